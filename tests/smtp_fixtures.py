"""A real SMTP server on loopback (aiosmtpd) for mail tests.

Use from a test module with ``pytest_plugins = ["smtp_fixtures"]``. The
``smtp_server`` fixture starts an aiosmtpd Controller on 127.0.0.1 (a free
port) whose handler records every message and can misbehave per recipient:
reply 421 or 550 at RCPT or DATA, answer RCPT too slowly, or take the whole
DATA and then never answer. ``smtp_server(tls="starttls"|"ssl")`` serves
STARTTLS or implicit TLS with a throwaway certificate the client trusts
(through SSL_CERT_FILE, as an operator's own CA would be). At the end of
each test it checks that no message reached the server twice.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from domain.notify.transport import MailSettings


@dataclass
class Rule:
    """How the server treats mail to one recipient."""

    stage: str = "DATA"  # RCPT | DATA
    reply: str | None = None  # e.g. "421 4.3.2 Try again later"; None: accept
    delay: float = 0.0  # seconds before replying
    hang: bool = False  # DATA only: take the whole message, never answer
    close_after: bool = False  # DATA only: accept, then drop the connection (an idle timeout)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    reply: str
    session: int = 0  # which connection brought it (1, 2, ... in order of arrival)

    @property
    def message(self):
        return message_from_bytes(self.content, policy=policy.default)

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


@dataclass
class RecordingHandler:
    rules: dict[str, Rule] = field(default_factory=dict)
    # Every message whose DATA content reached the server, with the reply given
    # ("hang" when none): what a receiving server could have delivered.
    received: list[Received] = field(default_factory=list)
    rcpt_seen: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def delivered(self) -> list[Received]:
        """Messages the server accepted (250), or took whole and never answered."""
        return [r for r in self.received if r.reply.startswith("250") or r.reply == "hang"]

    sessions: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _session_number(self, session) -> int:
        if not hasattr(session, "test_number"):
            session.test_number = next(self.sessions)
        return session.test_number

    async def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.released.is_set():
            await asyncio.sleep(0.02)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_seen.append(address)
        rule = self.rules.get(address)
        if rule and rule.stage == "RCPT":
            if rule.delay:
                await self._wait(rule.delay)
            if rule.reply:
                return rule.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        rule = next((self.rules[r] for r in envelope.rcpt_tos if r in self.rules
                     and self.rules[r].stage == "DATA"), None)
        reply = "250 2.0.0 Message accepted for delivery"
        if rule and rule.hang:
            reply = "hang"
        elif rule and rule.reply:
            reply = rule.reply
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.original_content or envelope.content, reply,
                                      self._session_number(session)))
        if rule and rule.hang:
            await self._wait(30)  # the client gives up first
            return "451 4.3.0 Too late"
        if rule and rule.delay:
            await self._wait(rule.delay)
        if rule and rule.close_after:
            # Runs once the reply is written: the client reads 250, then a closed line.
            asyncio.get_running_loop().call_soon(server.transport.close)
        return reply


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    def __init__(self, controller: Controller, handler: RecordingHandler, security: str):
        self.controller = controller
        self.handler = handler
        self.security = security

    @property
    def port(self) -> int:
        return self.controller.port

    def settings(self, **overrides) -> MailSettings:
        values = dict(host="127.0.0.1", port=self.port, security=self.security,
                      sender="orders@cookielab.hk", timeout=2.0)
        values.update(overrides)
        return MailSettings(**values)

    def rule(self, recipient: str, **kw) -> None:
        self.handler.rules[recipient] = Rule(**kw)

    def heal(self, recipient: str | None = None) -> None:
        if recipient is None:
            self.handler.rules.clear()
        else:
            self.handler.rules.pop(recipient, None)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A throwaway self-signed certificate for 127.0.0.1 (openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def smtp_server(request, monkeypatch):
    """Call to start a recording SMTP server: smtp_server(tls=None|"starttls"|"ssl")."""
    started: list[SMTPServer] = []

    def start(*, tls: str | None = None, **smtp_kwargs) -> SMTPServer:
        handler = RecordingHandler()
        kwargs = dict(hostname="127.0.0.1", port=free_port(), ready_timeout=10)
        kwargs.update(smtp_kwargs)
        if tls:
            cert, key = request.getfixturevalue("tls_files")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts it
            if tls == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        controller = Controller(handler, **kwargs)
        controller.start()
        server = SMTPServer(controller, handler, {"ssl": "ssl", "starttls": "starttls"}
                            .get(tls or "", "none"))
        started.append(server)
        return server

    yield start
    for server in started:
        server.handler.released.set()
        server.controller.stop()
    for server in started:  # whatever a test did, no message reached a server twice
        twice = [mid for mid, n in Counter(r.message_id for r in server.handler.delivered)
                 .items() if n > 1]
        assert not twice, f"delivered more than once: {twice}"
