"""Snapshots → events: what changed since the tracker last looked at a run."""
