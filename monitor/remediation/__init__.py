"""Runbook automation: runbooks as files, actions behind one protocol, and the engine that runs
them in the background and records every step (ARCHITECTURE.md, "Runbooks")."""
