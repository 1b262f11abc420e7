"""Orchestrators dagwatch watches, one module each behind the `Source` protocol."""
