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
"""

from __future__ import annotations

import logging
import threading

from flask import Flask
from rq import Worker
from rq.cron import CronScheduler

from jobs.deadlines import SWEEP_INTERVAL_SECONDS, sweep_job
from jobs.queue import QUEUE_NAME, connect, get_queue, use_app

log = logging.getLogger(__name__)


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


def run_worker(app: Flask, *, burst: bool = False, sweep: bool = True,
               sweep_interval: int = SWEEP_INTERVAL_SECONDS) -> bool:
    """Work the Shopdesk queue until stopped (or until empty with ``burst``)."""
    use_app(app)
    with app.app_context():
        queue = get_queue()
        if sweep and not burst:
            start_sweep_thread(app, sweep_interval)
        worker = Worker([queue], connection=queue.connection)
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
