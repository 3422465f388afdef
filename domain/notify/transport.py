"""Where email goes: an SMTP server from the environment, or nowhere but the copy.

Every message is first rendered into a MIME message and its copy stored as
``instance/mail/<id>.eml`` (the timeline links to it, the Mail page lists
it). With SMTP settings the copy is also sent; without them (the ``make run``
default) the copy is the delivery, so a merchant trying Shopdesk reads exactly
what their customers would get.

A failed send is classified by what it says about delivery:
- "retry": nothing was delivered (connection refused or lost before the
  message was handed over, a 4xx reply such as 421, a refusal while
  connecting, securing, logging in or at MAIL FROM: those are about the
  settings or the server, not this message): try again later;
- "permanent": the server refused this message for good (a 5xx reply to
  RCPT or DATA, such as 550 no such user);
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
from email import policy
from email.encoders import encode_base64
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path

from domain.models import OutboxMessage

# Non-ASCII text (Chinese) goes base64 or quoted-printable, never raw 8-bit:
# smtplib does not announce BODY=8BITMIME, and a server that did not offer it
# may reject or mangle 8-bit content.
MIME_POLICY = policy.default.clone(cte_type="7bit")


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
               sender_name: str = "", reply_to: str = "") -> Message:
    """The MIME message: text and HTML alternatives, inline images, attachments.

    The Message-ID is fixed per outbox row, so a receiving server or client
    that sees a hand-retried copy can tell it is the same message.

    Built with the classic email.mime classes: the same structure and bytes a
    mail client reads as the modern EmailMessage API would give, at less than
    half the cost (that API parses every header it sets through its header
    registry, a large share of a message's time in a 10,000-email batch).
    Addresses that are not ASCII need SMTPUTF8, which only the modern API
    sends, so those messages are built with it.
    """
    if not (message.recipient.isascii() and sender.isascii()):
        return _build_modern(message, rendered, sender=sender, sender_name=sender_name,
                             reply_to=reply_to)
    html_part: Message = MIMEText(rendered.html, "html", "utf-8")
    if rendered.inline_images:
        related = MIMEMultipart("related")
        related.attach(html_part)
        for cid, data, subtype in rendered.inline_images:
            image = MIMEImage(data, _subtype=subtype)
            image["Content-ID"] = f"<{cid}>"
            image["Content-Disposition"] = "inline"
            related.attach(image)
        html_part = related
    mime: Message = MIMEMultipart("alternative")
    mime.attach(MIMEText(rendered.text, "plain", "utf-8"))
    mime.attach(html_part)
    if rendered.attachments:
        mixed = MIMEMultipart("mixed")
        mixed.attach(mime)
        for filename, data, maintype, subtype in rendered.attachments:
            attachment = MIMEBase(maintype, subtype)
            attachment.set_payload(data)
            encode_base64(attachment)
            # RFC 2231 for a name such as "訂單 2024.xlsx".
            name = filename if filename.isascii() else ("utf-8", "", filename)
            attachment.add_header("Content-Disposition", "attachment", filename=name)
            mixed.attach(attachment)
        mime = mixed
    mime["Subject"] = _header(rendered.subject)
    mime["From"] = formataddr((sender_name, sender), charset="utf-8") if sender_name else sender
    mime["To"] = message.recipient
    if reply_to:
        mime["Reply-To"] = reply_to
    _identify(mime, message, sender)
    return mime


def _header(text: str) -> str | Header:
    return text if text.isascii() else Header(text, "utf-8")


def _identify(mime: Message, message: OutboxMessage, sender: str) -> None:
    domain = sender.rpartition("@")[2] or "shopdesk.local"
    mime["Message-ID"] = f"<outbox-{message.id}.{message.event_key.replace(':', '-')}@{domain}>"
    mime["Date"] = format_datetime(message.created_at.replace(tzinfo=UTC))
    mime["Auto-Submitted"] = "auto-generated"


def _build_modern(message: OutboxMessage, rendered: RenderedEmail, *, sender: str,
                  sender_name: str, reply_to: str) -> EmailMessage:
    mime = EmailMessage(policy=MIME_POLICY)
    mime["Subject"] = rendered.subject
    mime["From"] = formataddr((sender_name, sender)) if sender_name else sender
    mime["To"] = message.recipient
    if reply_to:
        mime["Reply-To"] = reply_to
    _identify(mime, message, sender)
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


def store_copy(folder: Path, message: OutboxMessage, mime: Message) -> Path:
    """Write the rendered message as <folder>/<id>.eml (replaced on a retry)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{message.id}.eml"
    tmp = path.with_suffix(".eml.tmp")
    # Flattened once, with SMTP's line endings: the copy is byte for byte what
    # SMTPConnection sends (flattening is a large share of a message's cost).
    data = mime.as_bytes(policy=mime.policy.clone(linesep="\r\n"))
    tmp.write_bytes(data)
    os.replace(tmp, path)
    mime.wire_bytes = data
    return path


# ------------------------------------------------------------------ SMTP


def _send_once_flattened(smtp: smtplib.SMTP, mime: Message) -> dict:
    """The bytes store_copy flattened, sent as they are; send_message (which
    flattens again, and handles SMTPUTF8) for anything else."""
    wire = getattr(mime, "wire_bytes", None)
    sender = parseaddr(str(mime["From"]))[1]
    recipient = parseaddr(str(mime["To"]))[1]
    if wire is None or not (sender and recipient and sender.isascii() and recipient.isascii()):
        return smtp.send_message(mime)
    return smtp.sendmail(sender, [recipient], wire)


class _TracksHandover:
    """smtplib's DATA step (the same bytes as smtplib.SMTP.data), noting when the
    whole message, final dot included, has been handed over: a connection lost
    after that leaves the outcome unknown, one lost before it delivered nothing."""

    handed_over = False

    def data(self, msg):
        self.putcmd("data")
        code, reply = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        if isinstance(msg, str):
            msg = re.sub(r"(?:\r\n|\n|\r(?!\n))", "\r\n", msg).encode("ascii")
        payload = re.sub(rb"(?m)^\.", b"..", msg)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        # sendall raises unless every byte was queued, so a failure here means the
        # server never saw the final dot and cannot have accepted the message.
        self.send(payload + b".\r\n")
        self.handed_over = True
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
        """A connected, secured and logged-in session.

        Any failure here says nothing about the message (the server is down,
        busy, misconfigured, or refuses our login): always "retry", whatever
        the reply code, so a settings mistake does not kill every message at
        once; MAX_ATTEMPTS still ends the retries.
        """
        s = self.settings
        smtp = None
        try:
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
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            if smtp is not None:
                smtp.close()
            raise DeliveryFailed(
                "retry", f"Could not connect to {s.host}:{s.port}: {_describe(exc)}") from exc

    def send(self, mime: Message) -> None:
        """Send one message, or raise DeliveryFailed saying what is known."""
        try:
            self._send(mime)
        except _Stale:
            # The kept-open session had been closed by the server while idle;
            # nothing was handed over, so one try on a fresh session is safe.
            self._send(mime)

    def _send(self, mime: Message) -> None:
        reused = self._smtp is not None
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        smtp.handed_over = False
        try:
            refused = _send_once_flattened(smtp, mime)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close(quit=False)
            code = min((c for c, _m in exc.recipients.values()), default=550)
            raise _by_code(code, _describe(exc)) from exc
        except smtplib.SMTPSenderRefused as exc:
            # MAIL FROM refused: about our sender address or session (530 "must
            # STARTTLS first", 553 "not allowed to send as"), not this message.
            self.close(quit=False)
            raise DeliveryFailed("retry", f"The server refused the sender "
                                          f"{_text(exc.sender)}: {_describe(exc)}") from exc
        except smtplib.SMTPResponseException as exc:  # a reply to RCPT or DATA, or 421
            self.close(quit=False)
            raise _by_code(exc.smtp_code, _describe(exc)) from exc
        except smtplib.SMTPNotSupportedError as exc:  # e.g. an address needs SMTPUTF8
            self.close(quit=False)
            raise DeliveryFailed("permanent", _describe(exc)) from exc
        except (smtplib.SMTPException, OSError) as exc:  # lost connection, timeout
            self.close(quit=False)
            if smtp.handed_over:
                raise DeliveryFailed(
                    "unknown", "The connection broke after the message was handed over, "
                               f"before the server confirmed it: {_describe(exc)}") from exc
            if reused and isinstance(exc, smtplib.SMTPServerDisconnected) \
                    and not _timed_out(exc):
                raise _Stale from exc
            raise DeliveryFailed("retry", _describe(exc)) from exc
        except Exception as exc:  # a bug or an odd message: bounded by MAX_ATTEMPTS
            self.close(quit=False)
            if smtp.handed_over:
                raise DeliveryFailed("unknown", _describe(exc)) from exc
            raise DeliveryFailed("retry", _describe(exc)) from exc
        if refused:  # some recipients refused (we send to one, so this is rare)
            code = min(c for c, _m in refused.values())
            raise _by_code(code, _describe(smtplib.SMTPRecipientsRefused(refused)))

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


class _Stale(Exception):
    """A reused session turned out closed before anything was handed over."""


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    """The error as staff read it in the timeline (stored as data, in English like
    the server's own replies): "SMTP 550: 5.1.1 No such user"."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{rcpt} refused: SMTP {code}: {_text(msg)}"
                         for rcpt, (code, msg) in exc.recipients.items())
    if isinstance(exc, TimeoutError) or _timed_out(exc):
        return "No answer from the mail server in time (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return "Connection refused (is the mail server running?)"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"The mail server closed the connection ({exc})" if str(exc) else \
            "The mail server closed the connection"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CopyOnly:
    """No SMTP settings: the stored copy is the delivery (the Mail page shows it)."""

    def send(self, mime: Message) -> None:
        return None

    def close(self, *, quit: bool = True) -> None:
        return None


def open_transport(settings: MailSettings):
    return SMTPConnection(settings) if settings.smtp_enabled else CopyOnly()
