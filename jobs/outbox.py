"""Outbox delivery on RQ: queue a delivery after each commit that wrote messages,
deliver due rows in a job, and the sweep's share (lost jobs, stuck rows, retries).

After a commit that wrote outbox rows (domain.notify.outbox keeps their ids in
``session.info``), one delivery job is queued, unless one is already queued
and not yet started (a Redis key set with NX: a burst of 1,000 orders queues
a handful of jobs, not 1,000). The job clears that key before it claims, so
rows committed while it runs get a job of their own. If Redis is down at the
commit the rows simply wait: the 60-second sweep queues a delivery whenever
due rows exist. The same hook publishes a wake-up for the desk's live alerts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from domain.notify import alerts, outbox
from domain.notify.delivery import deliver_due
from domain.notify.transport import MailSettings
from jobs.queue import get_queue, get_redis, in_app_context

log = logging.getLogger(__name__)

QUEUED_KEY = "shopdesk:outbox:delivery-queued"
QUEUED_TTL_SECONDS = 120  # a lost job frees the key by itself; the sweep covers the gap
ALERTS_CHANNEL = "shopdesk:desk-alerts"


def mail_folder(app=None) -> Path:
    app = app or current_app
    return Path(app.config.get("MAIL_FOLDER") or Path(app.instance_path) / "mail")


@in_app_context
def deliver_outbox_job() -> dict:
    """Deliver every email due now."""
    get_redis().delete(QUEUED_KEY)
    counts = deliver_due(MailSettings.from_config(current_app.config), mail_folder())
    _schedule_next_retry()
    return counts


def queue_delivery(*, force: bool = False) -> bool:
    """Queue one delivery job unless one is waiting already; False when Redis is down."""
    try:
        redis = get_redis()
        if not force and not redis.set(QUEUED_KEY, "1", nx=True, ex=QUEUED_TTL_SECONDS):
            return True  # a job is queued and has not started: it will take these rows
        get_queue().enqueue(deliver_outbox_job, result_ttl=600, failure_ttl=7 * 24 * 3600)
        return True
    except Exception:
        log.warning("Could not queue outbox delivery; the sweep will", exc_info=True)
        return False


def _schedule_next_retry() -> None:
    """Queue a delivery for the next failed row's retry time (the sweep is the backstop)."""
    from datetime import UTC

    at = outbox.next_retry_at()
    if at is None:
        return
    try:
        get_queue().enqueue_at(at.replace(tzinfo=UTC), deliver_outbox_job,
                               job_id=f"outbox-retry-{int(at.replace(tzinfo=UTC).timestamp())}",
                               result_ttl=600, failure_ttl=7 * 24 * 3600)
    except Exception:
        log.warning("Could not schedule the outbox retry", exc_info=True)


def publish_desk_alert() -> None:
    try:
        get_redis().publish(ALERTS_CHANNEL, json.dumps({"kind": "desk"}))
    except Exception:
        log.warning("Could not publish the desk alert; open pages will still poll", exc_info=True)


def sweep() -> dict:
    """The sweep's outbox share: give up stuck sends, queue delivery if anything is due."""
    stuck = outbox.give_up_stuck()
    due = outbox.due_count()
    if due:
        queue_delivery(force=True)
    return {"outbox_stuck": stuck, "outbox_due": due}


# ------------------------------------------------------------------ the commit hook


def _after_commit(session: Session) -> None:
    ids = outbox.take_new_ids(session)
    publish = alerts.take_publish_flag(session)
    if not (ids or publish) or not has_app_context():
        return
    if not current_app.config.get("NOTIFY_DISPATCH", True):
        return
    if ids:
        queue_delivery()
    if publish:
        publish_desk_alert()


def _after_rollback(session: Session) -> None:
    outbox.forget_new_ids(session)
    alerts.take_publish_flag(session)


_installed = False


def install_commit_hook() -> None:
    """Listen on every SQLAlchemy session (once per process)."""
    global _installed
    if _installed:
        return
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)
    _installed = True
