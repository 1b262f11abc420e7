"""Local stand-ins for the services dagwatch talks to, speaking their real wire formats.

Each is a real server on 127.0.0.1 (a free port), started and stopped by a fixture, so the real
clients (httpx, slack_sdk, smtplib) are exercised end to end. They record what they received and
can be told to fail: `fail_next(n, status, ...)` answers the next n requests with an error,
`delay` makes them slow (for client timeouts).
"""
