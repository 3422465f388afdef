"""The worker process: an RQ worker with its scheduler, plus the periodic sweep.

The sweep is registered with RQ's own CronScheduler (interval 60 s) running in
a thread of the worker process. It enqueues ``sweep_job`` on start-up and
every minute after; the worker runs it like any job. Why here and not as a
job that re-enqueues itself: a self-rescheduling chain breaks for good the
first time one link is lost (Redis flushed, job failed before re-enqueueing,
worker killed mid-job), while a loop owned by the running worker restarts
with it, and the first sweep on start-up catches whatever expired while no
worker was running. Several workers each sweeping is harmless: the sweep is
idempotent.

The scheduler child stops when the worker dies, however it dies, and a new
worker takes over a scheduler lock left by a killed one (jobs/scheduler.py).
Started by ``make run`` (jobs/devserver.py), the worker itself also stops when
that parent dies: ``SHOPDESK_EXIT_WITH_PARENT`` names the parent's pid.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from flask import Flask
from rq import Worker
from rq.cron import CronScheduler
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT

from jobs.deadlines import SWEEP_INTERVAL_SECONDS, sweep_job
from jobs.queue import QUEUE_NAME, connect, get_queue, use_app
from jobs.scheduler import ShopdeskScheduler, exit_with_parent

log = logging.getLogger(__name__)

# How often a worker without the scheduler lock tries again (RQ: 10 minutes). The
# idle loop wakes at least once a minute (the sweep job), so this is the delay.
MAINTENANCE_INTERVAL_SECONDS = 60
PARENT_ENV = "SHOPDESK_EXIT_WITH_PARENT"


class ShopdeskWorker(Worker):
    """RQ's worker with Shopdesk's scheduler (see jobs/scheduler.py)."""

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT):
        # RQ's own body, with the scheduler class swapped (RQ 2.12 has no setting for it).
        self.scheduler = ShopdeskScheduler(
            self.queues, connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format, log_format=log_format, serializer=self.serializer)
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()


def _watch_parent(parent_pid: int, poll: float = 1.0) -> None:
    """Warm shutdown (SIGTERM: finish the job, stop the scheduler) once the parent is gone."""
    exit_with_parent(signal.SIGTERM)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll)
        log.warning("The process that started this worker (%s) is gone; stopping", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class _ThreadCronScheduler(CronScheduler):
    """CronScheduler that can run in a thread (signals belong to the worker)."""

    def _install_signal_handlers(self):
        pass


def start_sweep_thread(app: Flask, interval: int = SWEEP_INTERVAL_SECONDS) -> threading.Thread:
    # Its own connection: the worker's blocking BLPOP must not share one.
    cron = _ThreadCronScheduler(connection=connect(app), name="shopdesk-sweep")
    cron.register(sweep_job, queue_name=QUEUE_NAME, interval=interval,
                  result_ttl=3600, failure_ttl=7 * 24 * 3600)
    thread = threading.Thread(target=cron.start, name="sweep-cron", daemon=True)
    thread.start()
    return thread


def warm_up(app: Flask) -> None:
    """Load once, before any work horse forks, what every job would load again.

    RQ runs each job in a fresh fork of this process, so a horse starts with
    exactly what the worker had loaded: compiled email templates, both
    languages' translations and the store's reduced logo. Loaded per horse
    instead, they made each delivery job's first email about 140 ms instead of
    40 ms.
    """
    from flask_babel import force_locale, get_translations

    from domain.db import db
    from domain.i18n import LOCALES
    from domain.notify import delivery  # noqa: F401  (imports what delivery uses)
    from domain.notify.email import logo_image

    env = app.jinja_env
    for name in env.list_templates(filter_func=lambda n: n.startswith("emails/")):
        env.get_template(name)
    # A context of its own (its own database session), even inside a caller's.
    with app.app_context(), app.test_request_context():
        for locale in LOCALES:
            with force_locale(locale):
                get_translations()
        try:
            logo_image()
        except Exception:  # a missing or broken logo is the job's to report, not start-up's
            log.exception("could not prepare the store logo for email")
        finally:
            db.session.remove()


def run_worker(app: Flask, *, burst: bool = False, sweep: bool = True,
               sweep_interval: int = SWEEP_INTERVAL_SECONDS) -> bool:
    """Work the Shopdesk queue until stopped (or until empty with ``burst``)."""
    use_app(app)
    parent = os.environ.get(PARENT_ENV, "")
    if parent.isdigit() and not burst:
        _watch_parent(int(parent))
    warm_up(app)
    with app.app_context():
        queue = get_queue()
        if sweep and not burst:
            start_sweep_thread(app, sweep_interval)
        worker = ShopdeskWorker([queue], connection=queue.connection,
                                maintenance_interval=MAINTENANCE_INTERVAL_SECONDS)
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
