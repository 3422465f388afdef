"""One log line when a job starts and one when it ends, with the request id that enqueued it.

The web side puts ``request_id`` into the RQ job's meta when it enqueues
(jobs/queue.py reads ``g.request_id``, set by blueprints/request_log.py); the
wrappers in jobs/queue.py are decorated with :func:`logs_job`, so a
request's line and its jobs' lines share one id to grep for.
"""

from __future__ import annotations

import functools
import logging
import sys
import time

log = logging.getLogger("shopdesk.jobs")


def ensure_handler(logger: logging.Logger) -> None:
    """Send ``logger``'s INFO lines to stderr (journald under systemd) when nothing else does.

    gunicorn and RQ configure only their own loggers, so without this the
    lines would be dropped; under pytest the root's capture handler still
    sees them (the logger propagates).
    """
    logger.setLevel(logging.INFO)
    # Alembic's fileConfig (migrations/env.py) disables loggers that existed before it ran.
    logger.disabled = False
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logger.addHandler(handler)


def request_id_of_current_job() -> str:
    from rq import get_current_job

    job = get_current_job()
    return str((job.meta or {}).get("request_id") or "-") if job is not None else "-"


def logs_job(func):
    """Decorator for what the worker runs: a start and an end line (ok or failed, milliseconds)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        ensure_handler(log)
        from rq import get_current_job

        job = get_current_job()
        job_id = job.id if job is not None else "-"
        name = (job.description if job is not None and job.description else func.__qualname__)
        request_id = request_id_of_current_job()
        log.info("job=%s request_id=%s event=start name=%s", job_id, request_id, name)
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = func(*args, **kwargs)
            outcome = "done"
            return result
        finally:
            log.info("job=%s request_id=%s event=%s duration_ms=%.1f", job_id, request_id,
                     outcome, (time.perf_counter() - started) * 1000)

    return wrapper
