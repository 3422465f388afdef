"""Deadline jobs: expire one order at its deadline, remind before it, sweep every minute.

Job functions are thin: they take ids, open an app context and call a domain
action. Each is idempotent (the domain's guarded UPDATEs make a second run a
no-op) and lets every unexpected error propagate, so RQ marks the job failed
and keeps the traceback in its failed-job registry.

Per-order jobs are a convenience that makes expiry punctual; correctness
rests on the sweep, which finds anything they missed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from domain import deadlines
from domain.status import is_awaiting_payment
from jobs import heartbeat
from jobs.queue import get_queue, get_redis, in_app_context

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 60


@in_app_context
def expire_order_job(order_id: int) -> str:
    """Scheduled for the order's deadline."""
    return deadlines.expire_if_due(order_id)


@in_app_context
def remind_order_job(order_id: int) -> bool:
    """Scheduled for deadline − reminder lead time."""
    return deadlines.remind_if_due(order_id)


@in_app_context
def sweep_job() -> dict:
    """Expire everything overdue, write due reminders, catch lost deliveries, drop old exports."""
    # First: the banner and /healthz mean "a worker is running jobs", even if this sweep then fails.
    heartbeat.beat(get_redis())
    from jobs import outbox
    from jobs.exports import remove_expired_exports

    counts = {"expired": deadlines.sweep_overdue(),
              "reminders": deadlines.write_due_reminders()}
    counts["exports_removed"] = remove_expired_exports()  # downloads past their 7 days
    return {**counts, **outbox.sweep()}


def _aware(moment: datetime) -> datetime:
    # The database keeps naive UTC; RQ reads naive datetimes as local time.
    return moment.replace(tzinfo=UTC)


def schedule_deadline_jobs(order) -> list[str]:
    """Schedule the order's expiry (and reminder) with RQ's scheduler.

    Job ids carry the time, so scheduling again for the same time replaces
    nothing and a moved deadline gets a new job (the old one then finds the
    deadline not reached and does nothing). If Redis is unreachable the order
    is still safe: the sweep expires it within a minute of its deadline once
    a worker runs, so the failure is logged rather than shown to the customer.
    """
    if not is_awaiting_payment(order) or not (order.payment_deadline_at or order.reminder_at):
        return []
    scheduled = []
    try:
        queue = get_queue()
        for moment, job_func, name in ((order.payment_deadline_at, expire_order_job, "expire"),
                                       (order.reminder_at, remind_order_job, "remind")):
            if moment is None:
                continue
            # The id carries the time: a moved deadline gets a new job, the old one is a no-op.
            job = queue.enqueue_at(_aware(moment), job_func, order.id,
                                   job_id=f"{name}-{order.id}-{int(_aware(moment).timestamp())}",
                                   result_ttl=3600, failure_ttl=7 * 24 * 3600)
            scheduled.append(job.id)
    except Exception:  # Redis down: the periodic sweep is the safety net
        log.warning("Could not schedule deadline jobs for order %s; the sweep will catch it",
                    order.id, exc_info=True)
    return scheduled


def enqueue_sweep():
    """Queue one sweep now (the CLI and tests use this)."""
    return get_queue().enqueue(sweep_job, result_ttl=3600, failure_ttl=7 * 24 * 3600)
