"""The Mail page (owner only): every message Shopdesk wrote, with a rendered preview.

The preview reads the message's stored copy (``instance/mail/<id>.eml``, what
was handed to SMTP or, without SMTP, kept instead of sending) with the
``email`` package. The order page shows the same preview for its own
messages (blueprints/orders/routes.py), so the reading lives here once.

The HTML part is never put into a desk page: it is served on its own URL with
a Content-Security-Policy of its own (no script, no network, sandboxed, framed
only by the desk) and shown in a sandboxed <iframe>. Inline images (cid:) are
rewritten to data: URIs from the message's own parts.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import unquote

from flask import Blueprint, abort, current_app, make_response, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from blueprints.access import owner_only
from blueprints.rendering import render
from domain.db import db
from domain.i18n import N_
from domain.models import Order, OutboxMessage
from domain.notify.kinds import KIND_LABELS
from domain.notify.outbox import EMAIL
from domain.notify.transport import MailSettings

bp = Blueprint("mail", __name__, url_prefix="/settings/mail")
owner_only(bp)  # every customer's address and order, in one list

PER_PAGE = 50
MAX_PAGE = 100_000
# Largest id a route accepts: ids are 32-bit on PostgreSQL; a bigger number is no message.
MAX_ID = 2**31 - 1
# The Mail page's status filter -> the row statuses it shows ("sending" lasts a moment:
# it is listed with the queued ones).
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "pending": ("pending", "sending"),
    "sent": ("sent",),
    "failed": ("failed",),
    "dead": ("dead",),
    "unknown": ("unknown",),
}
# A message's status as a badge or a tab reads (kinds.STATUS_LABELS are the in-sentence forms).
STATUS_TITLES = {
    "pending": N_("Queued"),
    "sending": N_("Sending"),
    "sent": N_("Sent"),
    "failed": N_("Failed, will retry"),
    "dead": N_("Failed for good"),
    "unknown": N_("Outcome unknown"),
    "skipped": N_("Skipped"),
}
# The HTML part's own policy: nothing runs, nothing loads but its inline images and
# styles, only the desk may frame it, and it runs in a sandbox (an opaque origin).
PREVIEW_CSP = ("default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; "
               "font-src data:; frame-ancestors 'self'; form-action 'none'; base-uri 'none'; "
               "sandbox")
CID_REF = re.compile(r"""cid:([^"'\s<>)]+)""", re.I)


# ------------------------------------------------------------------ reading a copy


@dataclass
class MailCopy:
    """A stored message as the preview shows it. ``problem`` says why there is none."""

    problem: str = ""
    subject: str = ""
    sender: str = ""
    to: str = ""
    reply_to: str = ""
    date: datetime | None = None
    text: str = ""
    html: str = ""
    attachments: list[tuple[str, int]] = field(default_factory=list)


def _copy_file(message: OutboxMessage) -> Path | None:
    """The message's .eml, where the row says; else in the mail folder under the same
    name (an instance folder restored or moved to another path)."""
    if not message.copy_path:
        return None
    stored = Path(message.copy_path)
    if stored.name != f"{message.id}.eml":
        return None  # not a copy this app wrote
    for candidate in (stored, Path(current_app.config["MAIL_FOLDER"]) / stored.name):
        if candidate.is_file():
            return candidate
    return None


def _inline_images(mime) -> dict[str, str]:
    """cid -> data: URI for every part carrying a Content-ID (the HTML's inline images)."""
    images = {}
    for part in mime.walk():
        cid = (part.get("Content-ID") or "").strip().strip("<>")
        if not cid or part.is_multipart() or part.get_content_maintype() != "image":
            continue
        data = part.get_payload(decode=True) or b""
        images[cid] = f"data:{part.get_content_type()};base64,{base64.b64encode(data).decode()}"
    return images


def inline_cid_images(html: str, images: dict[str, str]) -> str:
    return CID_REF.sub(lambda m: images.get(unquote(m.group(1)), m.group(0)), html)


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def read_copy(message: OutboxMessage) -> MailCopy:
    """Parse the message's stored copy, or say why there is nothing to show."""
    path = _copy_file(message)
    if path is None:
        if not message.copy_path and message.status in ("pending", "sending"):
            return MailCopy(problem=_("This message is queued and not written yet. Its copy "
                                      "appears here once Shopdesk sends it."))
        if not message.copy_path:
            return MailCopy(problem=_("Shopdesk could not write this message, so there is no "
                                      "copy of it."))
        return MailCopy(problem=_("The copy of this message is no longer on the server "
                                  "(%(file)s).", file=Path(message.copy_path).name))
    try:
        mime = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        text_part = mime.get_body(preferencelist=("plain",))
        html_part = mime.get_body(preferencelist=("html",))
        date = mime["Date"].datetime if mime["Date"] is not None else None
        return MailCopy(
            subject=str(mime["Subject"] or ""), sender=str(mime["From"] or ""),
            to=str(mime["To"] or ""), reply_to=str(mime["Reply-To"] or ""),
            date=_naive_utc(date),
            text=text_part.get_content() if text_part is not None else "",
            html=inline_cid_images(html_part.get_content(), _inline_images(mime))
            if html_part is not None else "",
            attachments=[(part.get_filename() or _("(no name)"),
                          len(part.get_payload(decode=True) or b""))
                         for part in mime.iter_attachments()])
    except (OSError, LookupError, ValueError, TypeError, AttributeError):
        # An unreadable file or an unknown charset: say so rather than fail the page.
        return MailCopy(problem=_("The copy of this message (%(file)s) could not be read.",
                                  file=path.name))


def preview_page(message: OutboxMessage, *, html_url: str, back_url: str, back_label: str,
                 order: Order | None = None):
    """The rendered copy: headers, the HTML part (framed) and the text part."""
    return render("mail/message.html", block="content", message=message,
                  copy=read_copy(message), html_url=html_url, back_url=back_url,
                  back_label=back_label, order=order,
                  kind_labels=KIND_LABELS, status_labels=STATUS_TITLES)


def html_part_response(message: OutboxMessage):
    """The HTML part alone, for the preview's sandboxed <iframe>, under PREVIEW_CSP."""
    copy = read_copy(message)
    if copy.html:
        body = copy.html
    else:
        body = render("mail/_no_html.html", block=None,
                      reason=copy.problem or _("This message has no HTML part."))
    response = make_response(body)
    response.mimetype = "text/html"
    # Set here, so security.set_security_headers (setdefault) keeps them.
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def message_or_404(message_id: int) -> OutboxMessage:
    message = db.session.get(OutboxMessage, message_id) if 0 < message_id <= MAX_ID else None
    if message is None:
        abort(404)
    return message


# ------------------------------------------------------------------ the Mail page


def _status_counts() -> dict[str, int]:
    # The Mail page is email's: WhatsApp messages show on their orders and in billing.
    rows = db.session.execute(select(OutboxMessage.status, func.count())
                              .where(OutboxMessage.channel == EMAIL)
                              .group_by(OutboxMessage.status)).all()
    by_status = dict(rows)
    counts = {name: sum(by_status.get(s, 0) for s in statuses)
              for name, statuses in STATUS_FILTERS.items()}
    counts[""] = sum(by_status.values())
    return counts


def _page_number(raw: str | None) -> int:
    return int(raw) if raw and raw.isascii() and raw.isdigit() and 0 < len(raw) <= 6 else 1


@bp.get("")
def index():
    """Every message, newest first, by status; whether SMTP sends them or they are kept."""
    status = request.args.get("status", "")
    if status not in STATUS_FILTERS:
        status = ""
    counts = _status_counts()
    total = counts[status]
    pages = max(1, -(-total // PER_PAGE))
    page = max(1, min(_page_number(request.args.get("page")), pages, MAX_PAGE))
    query = (select(OutboxMessage, Order.number)
             .outerjoin(Order, Order.id == OutboxMessage.order_id)
             .where(OutboxMessage.channel == EMAIL)
             .order_by(OutboxMessage.id.desc())
             .limit(PER_PAGE).offset((page - 1) * PER_PAGE))
    if status:
        query = query.where(OutboxMessage.status.in_(STATUS_FILTERS[status]))
    rows = list(db.session.execute(query).tuples())
    settings = MailSettings.from_config(current_app.config)
    return render("mail/index.html", block="settings", section="mail", rows=rows,
                  status=status, counts=counts, page=page, pages=pages, total=total,
                  smtp=settings, folder=current_app.config["MAIL_FOLDER"],
                  kind_labels=KIND_LABELS, status_labels=STATUS_TITLES,
                  filters=[("", _("All"))] + [(name, _(STATUS_TITLES[name]))
                                              for name in STATUS_FILTERS])


@bp.get("/<int:message_id>")
def message(message_id: int):
    """The rendered copy of any message (the Mail page's preview)."""
    msg = message_or_404(message_id)
    order = db.session.get(Order, msg.order_id) if msg.order_id else None
    return preview_page(msg, html_url=url_for("mail.message_html", message_id=msg.id),
                        back_url=url_for("mail.index"), back_label=_("Mail"), order=order)


@bp.get("/<int:message_id>/html")
def message_html(message_id: int):
    return html_part_response(message_or_404(message_id))
