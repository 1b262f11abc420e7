"""The demo ML pipeline that `dagwatch up` runs when no config is given."""
