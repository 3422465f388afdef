"""Email content, rendered at send time from the order as it is then (SPEC §2).

PLACEHOLDER: the full templates (templates/emails/) replace this body; the
signatures stay.
"""

from __future__ import annotations

from domain.models import OutboxMessage
from domain.notify.transport import MailSettings, RenderedEmail
from domain.store import get_settings


def sender_for(settings: MailSettings) -> tuple[str, str, str]:
    """(From address, From name, Reply-To) for the store's messages."""
    store = get_settings()
    sender = settings.sender or store.email or "shopdesk@localhost"
    return sender, store.name, store.email if store.email and store.email != sender else ""


def render_email(message: OutboxMessage) -> RenderedEmail:
    from domain.db import db
    from domain.models import Order

    order = db.session.get(Order, message.order_id) if message.order_id else None
    number = order.number if order else ""
    subject = f"{number} {message.kind} — {get_settings().name}"
    return RenderedEmail(subject=subject, text=subject, html=f"<p>{subject}</p>")
