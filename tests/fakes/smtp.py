"""A real SMTP server (aiosmtpd) on loopback: STARTTLS with a throwaway CA, AUTH, scripted refusals.

`tls=True` serves STARTTLS with a certificate for 127.0.0.1 issued by a CA made in the test
(trustme); `client_context` trusts that CA and nothing else, so the client really verifies the
certificate. `users` enables AUTH (PLAIN, LOGIN), required before MAIL when given. `reject_rcpt`
and `reject_data` (every time) or `fail_next(n, reply)` (n times) make the server answer a reply such as "451 4.3.0 Try again later" or
"550 5.1.1 No such user"; `stall` holds the DATA reply for that many seconds (client timeouts).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class _Handler:
    server: FakeSMTP

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if self.server.reject_rcpt and address in self.server.reject_rcpt:
            return self.server.reject_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.server.stall:
            await asyncio.sleep(self.server.stall)
        if self.server.failures:
            return self.server.failures.pop(0)
        if self.server.reject_data:
            return self.server.reject_data
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, tls=session.ssl is not None, login=login)
        )
        return "250 Message accepted for delivery"


@dataclass
class FakeSMTP:
    tls: bool = False
    users: dict[str, str] | None = None
    reject_rcpt: dict[str, str] = field(default_factory=dict)
    reject_data: str | None = None
    stall: float = 0.0
    failures: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    auth_attempts: list[tuple[str, bool]] = field(default_factory=list)
    client_context: ssl.SSLContext | None = None
    port: int = 0
    _controller: Controller | None = None

    def start(self) -> FakeSMTP:
        kwargs: dict[str, Any] = {}
        if self.tls:
            import trustme

            ca = trustme.CA()
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
            self.client_context = ssl.create_default_context()
            ca.configure_trust(self.client_context)
            kwargs.update(tls_context=server_context, require_starttls=True)
        if self.users is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls)
        self.port = _free_port()
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, decode_data=False, enable_SMTPUTF8=True, **kwargs
        )
        self._controller.start()
        return self

    def fail_next(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        """Answer the next `count` DATA commands with `reply` (like the HTTP fakes' fail_next)."""
        self.failures.extend([reply] * count)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users is not None and self.users.get(login) == password
        self.auth_attempts.append((login, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def _free_port() -> int:
    """aiosmtpd's Controller checks its port by connecting to it, so port 0 cannot be used."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentSMTP:
    """Accepts TCP connections and never greets: smtplib's timeout path, a stuck relay."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self.port = self._socket.getsockname()[1]

    def close(self) -> None:
        self._socket.close()
