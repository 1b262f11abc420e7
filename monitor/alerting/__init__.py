"""Events → alerts → notifications: lifecycle, routing, the outbox and its notifiers."""
