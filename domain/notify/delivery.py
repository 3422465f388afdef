"""Deliver due outbox rows: claim, render at send time, store the copy, send, record.

Called by the delivery job (jobs/outbox.py) with the app's mail settings.
Each row is claimed by a guarded UPDATE (outbox.claim_due); right before its
send the row is checked to be still ours in the same UPDATE that records its
subject and copy, and its outcome is recorded right after. A worker killed
between the send and the record leaves the row "sending", which the sweep
turns into "unknown": never a second send.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from domain.db import db
from domain.models import utcnow
from domain.notify import outbox
from domain.notify.transport import (
    DeliveryFailed,
    MailSettings,
    build_mime,
    open_transport,
    store_copy,
)

log = logging.getLogger(__name__)
CLAIM_BATCH = 50


def deliver_due(settings: MailSettings, mail_folder: Path, *, limit: int | None = None,
                now: Callable[[], datetime] = utcnow) -> dict[str, int]:
    """Deliver every email due now (at most ``limit``); counts per outcome."""
    from domain.notify.email import render_email, sender_for

    counts = {"sent": 0, "failed": 0, "dead": 0, "unknown": 0, "skipped": 0}
    transport = open_transport(settings)
    done = 0
    try:
        while limit is None or done < limit:
            batch = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - done)
            ids, token = outbox.claim_due(limit=batch, now=now())
            if not ids:
                break
            for message_id in ids:
                outcome = _deliver_one(message_id, token, transport, settings, mail_folder,
                                       render_email, sender_for, now)
                counts[outcome] += 1
                done += 1
            db.session.expunge_all()  # keep the identity map small across batches
    finally:
        transport.close()
    return counts


def _deliver_one(message_id, token, transport, settings, mail_folder, render_email,
                 sender_for, now) -> str:
    message = outbox.get_message(message_id)
    try:
        rendered = render_email(message)
        sender, sender_name, reply_to = sender_for(settings)
        mime = build_mime(message, rendered, sender=sender, sender_name=sender_name,
                          reply_to=reply_to)
        copy = store_copy(mail_folder, message, mime)
    except Exception as exc:  # a rendering bug or a vanished order: retried, then dead
        db.session.rollback()
        log.exception("Could not render outbox message %s", message_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return outbox.record_failure(message_id, token, error=f"Could not render: {detail}",
                                     outcome="retry", now=now())
    if not outbox.record_rendered(message_id, token, subject=rendered.subject,
                                  copy_path=str(copy)):
        return "skipped"  # no longer ours (given up as stuck): never send it
    try:
        transport.send(mime)
    except DeliveryFailed as failure:
        return outbox.record_failure(message_id, token, error=failure.detail,
                                     outcome=failure.outcome, now=now())
    outbox.record_sent(message_id, token, now=now())
    return "sent"
