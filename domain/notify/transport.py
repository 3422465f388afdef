"""Where email goes: an SMTP server from the environment, or nowhere but the copy.

Every message is first rendered into a MIME message and its copy stored as
``instance/mail/<id>.eml`` (the timeline links to it, the Mail page lists
it). With SMTP settings the copy is also sent; without them (the ``make run``
default) the copy is the delivery, so a merchant trying Shopdesk reads exactly
what their customers would get.

A failed send is classified by what it says about delivery:
- "retry": nothing was delivered (connection refused or lost before the
  message was handed over, a 4xx reply such as 421): try again later;
- "permanent": the server refused for good (5xx, such as 550 no such user);
- "unknown": the connection broke after the whole message was handed over
  and before the server said yes or no. It may have been delivered, so it is
  never resent on its own.
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from domain.models import OutboxMessage


class DeliveryFailed(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


@dataclass
class RenderedEmail:
    """A message's content, rendered at send time (domain/notify/email.py)."""

    subject: str
    text: str
    html: str
    # (content id, bytes, image subtype such as "png"), referenced as cid:<id> in the HTML.
    inline_images: list[tuple[str, bytes, str]] = field(default_factory=list)
    # (file name, bytes, main type, subtype), e.g. an Excel export.
    attachments: list[tuple[str, bytes, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class MailSettings:
    """SMTP settings from the environment (app.py reads them into the config)."""

    host: str = ""
    port: int = 587
    user: str = ""
    password: str = ""
    security: str = "starttls"  # starttls | ssl | none
    sender: str = ""
    sender_name: str = ""
    timeout: float = 20.0

    @property
    def smtp_enabled(self) -> bool:
        return bool(self.host)

    @classmethod
    def from_config(cls, config) -> MailSettings:
        security = (config.get("SMTP_SECURITY") or "starttls").lower()
        if security not in ("starttls", "ssl", "none"):
            security = "starttls"
        return cls(host=config.get("SMTP_HOST") or "",
                   port=int(config.get("SMTP_PORT") or (465 if security == "ssl" else 587)),
                   user=config.get("SMTP_USER") or "", password=config.get("SMTP_PASSWORD") or "",
                   security=security, sender=config.get("MAIL_FROM") or "",
                   timeout=float(config.get("SMTP_TIMEOUT") or 20))


def build_mime(message: OutboxMessage, rendered: RenderedEmail, *, sender: str,
               sender_name: str = "", reply_to: str = "") -> EmailMessage:
    """The MIME message: text and HTML alternatives, inline images, attachments.

    The Message-ID is fixed per outbox row, so a receiving server or client
    that sees a hand-retried copy can tell it is the same message.
    """
    mime = EmailMessage()
    mime["Subject"] = rendered.subject
    mime["From"] = formataddr((sender_name, sender)) if sender_name else sender
    mime["To"] = message.recipient
    if reply_to:
        mime["Reply-To"] = reply_to
    domain = sender.rpartition("@")[2] or "shopdesk.local"
    mime["Message-ID"] = f"<outbox-{message.id}.{message.event_key.replace(':', '-')}@{domain}>"
    mime["Date"] = format_datetime(message.created_at.replace(tzinfo=UTC))
    mime["Auto-Submitted"] = "auto-generated"
    mime.set_content(rendered.text)
    mime.add_alternative(rendered.html, subtype="html")
    if rendered.inline_images:
        html_part = mime.get_payload()[1]
        for cid, data, subtype in rendered.inline_images:
            html_part.add_related(data, maintype="image", subtype=subtype, cid=f"<{cid}>",
                                  disposition="inline")
    for filename, data, maintype, subtype in rendered.attachments:
        mime.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mime


def new_content_id() -> str:
    return make_msgid(domain="shopdesk.local")[1:-1]


def store_copy(folder: Path, message: OutboxMessage, mime: EmailMessage) -> Path:
    """Write the rendered message as <folder>/<id>.eml (replaced on a retry)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{message.id}.eml"
    tmp = path.with_suffix(".eml.tmp")
    tmp.write_bytes(mime.as_bytes())
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ SMTP


class _TracksHandover:
    """smtplib's DATA step, noting when the whole message has been handed over:
    a connection lost after that leaves the outcome unknown."""

    handed_over = False

    def data(self, msg):
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        payload = re.sub(rb"(?m)^\.", b"..", msg if isinstance(msg, bytes) else msg.encode())
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        self.handed_over = True
        self.send(payload + b".\r\n")
        return self.getreply()


class _SMTP(_TracksHandover, smtplib.SMTP):
    pass


class _SMTPSSL(_TracksHandover, smtplib.SMTP_SSL):
    pass


def _by_code(code: int, detail: str) -> DeliveryFailed:
    return DeliveryFailed("permanent" if 500 <= code < 600 else "retry", detail)


class SMTPConnection:
    """One SMTP session reused for a batch of messages; reconnects after an error."""

    def __init__(self, settings: MailSettings):
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if s.security == "ssl":
            smtp = _SMTPSSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            smtp = _SMTP(s.host, s.port, timeout=s.timeout)
            if s.security == "starttls":
                smtp.starttls(context=context)
        if s.user:
            smtp.login(s.user, s.password)
        return smtp

    def send(self, mime: EmailMessage) -> None:
        """Send one message, or raise DeliveryFailed saying what is known."""
        smtp = None
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            smtp = self._smtp
            smtp.handed_over = False
            refused = smtp.send_message(mime)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close(quit=False)
            code = min((c for c, _m in exc.recipients.values()), default=550)
            raise _by_code(code, _describe(exc)) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, 421, auth
            self.close(quit=False)
            if isinstance(exc, smtplib.SMTPAuthenticationError):
                raise DeliveryFailed("retry", _describe(exc)) from exc  # fixable settings
            raise _by_code(exc.smtp_code, _describe(exc)) from exc
        except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self.close(quit=False)
            if smtp is not None and smtp.handed_over:
                raise DeliveryFailed(
                    "unknown", "The connection broke after the message was handed over, "
                               f"before the server confirmed it: {_describe(exc)}") from exc
            raise DeliveryFailed("retry", _describe(exc)) from exc
        if refused:  # some recipients refused (we send to one, so this is rare)
            code = min(c for c, _m in refused.values())
            raise _by_code(code, f"Refused: {refused}")

    def close(self, *, quit: bool = True) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if quit:
                smtp.quit()
            else:
                smtp.close()
        except Exception:  # already broken: nothing left to tidy
            smtp.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        return f"SMTP {exc.smtp_code}: {text}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt}: SMTP {code} {msg.decode('utf-8', 'replace') if isinstance(msg, bytes) else msg}"
                         for rcpt, (code, msg) in exc.recipients.items())
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class CopyOnly:
    """No SMTP settings: the stored copy is the delivery (the Mail page shows it)."""

    def send(self, mime: EmailMessage) -> None:
        return None

    def close(self, *, quit: bool = True) -> None:
        return None


def open_transport(settings: MailSettings):
    return SMTPConnection(settings) if settings.smtp_enabled else CopyOnly()
