"""The runbooks shipped with dagwatch (YAML); a package only so they install with it."""
