"""A real ``flask worker`` process, killed with SIGKILL: its scheduler child goes with it,
and the next worker schedules jobs within seconds (not after a stale lock times out).

Workers run as subprocesses against the session's embedded Redis (over its unix
socket, as REDIS_URL) and this test's SQLite file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from rq import Queue
from rq.job import Job as RQJob
from rq.job import JobStatus

from jobs.queue import QUEUE_NAME
from jobs.scheduler import ShopdeskScheduler, clear_stale_lock, holder_is_gone

pytestmark = pytest.mark.slow
pytest_plugins = ["jobs_fixtures"]
ROOT = Path(__file__).resolve().parents[1]
LOCK = ShopdeskScheduler.get_locking_key(QUEUE_NAME)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
def start_worker(app, redis_conn, db_path, tmp_path):
    """Start ``flask worker`` (no sweep) as a subprocess; every process it left is
    killed at the end, by pid."""
    socket_path = redis_conn.connection_pool.connection_kwargs["path"]
    env = {**os.environ, "REDIS_URL": f"unix://{socket_path}",
           "DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": "test-secret-" + "x" * 32,
           "PYTHONUNBUFFERED": "1"}
    env.pop("SHOPDESK_EXIT_WITH_PARENT", None)
    started: list[psutil.Process] = []

    def track(process: psutil.Process) -> psutil.Process:
        started.append(process)  # killed at the end, even if orphaned
        return process

    def start() -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker",
                                   "--no-sweep"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        track(psutil.Process(worker.pid))
        return worker

    start.track = track
    yield start
    for process in started:
        try:
            for child in process.children(recursive=True):
                started.append(child)
        except psutil.NoSuchProcess:
            pass
    for process in started:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(started, timeout=10)


def scheduler_child(start_worker, worker: subprocess.Popen, redis_conn) -> psutil.Process:
    """The worker's scheduler process, once it holds the lock and has beaten."""
    def ready():
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited with {worker.returncode}")
        children = psutil.Process(worker.pid).children()
        holder = redis_conn.get(LOCK)
        if len(children) == 1 and holder and \
                redis_conn.hget(f"rq:scheduler:{holder.decode()}", "pid") == \
                str(children[0].pid).encode():
            return children[0]
        return None

    return start_worker.track(wait_for(ready, 60, "the worker started its scheduler"))


def scheduled_job_runs(redis_conn, within: float) -> float:
    """Schedule a job one second ahead; seconds until it has run."""
    queue = Queue(QUEUE_NAME, connection=redis_conn)
    start = time.monotonic()
    job = queue.enqueue_at(datetime.now(UTC) + timedelta(seconds=1), "math.sqrt", 16.0)
    wait_for(lambda: RQJob.fetch(job.id, connection=redis_conn).get_status() ==
             JobStatus.FINISHED, within, "the scheduled job ran")
    assert RQJob.fetch(job.id, connection=redis_conn).return_value() == 4.0
    return time.monotonic() - start


def test_sigkilled_worker_takes_its_scheduler_child_along(app, redis_conn, start_worker):
    worker = start_worker()
    child = scheduler_child(start_worker, worker, redis_conn)
    assert scheduled_job_runs(redis_conn, within=15) < 15  # the scheduler works

    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    # the child notices within a few seconds, stops and releases its lock
    gone, alive = psutil.wait_procs([child], timeout=5)
    assert alive == [], f"scheduler child {child.pid} outlived its worker"
    assert redis_conn.get(LOCK) is None

    # a new worker schedules at once
    replacement = start_worker()
    scheduler_child(start_worker, replacement, redis_conn)
    assert scheduled_job_runs(redis_conn, within=10) < 10


def test_new_worker_takes_over_the_lock_of_a_killed_scheduler(app, redis_conn, start_worker):
    worker = start_worker()
    child = scheduler_child(start_worker, worker, redis_conn)
    # both killed at once (kill -9 of the group, the OOM killer): nobody releases the lock
    child.send_signal(signal.SIGKILL)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    psutil.wait_procs([child], timeout=10)
    assert redis_conn.get(LOCK) is not None and redis_conn.ttl(LOCK) > 30

    replacement = start_worker()
    new_child = scheduler_child(start_worker, replacement, redis_conn)
    assert new_child.pid != child.pid
    assert scheduled_job_runs(redis_conn, within=10) < 10


def test_only_the_lock_of_a_gone_scheduler_is_cleared(app, redis_conn, start_worker):
    worker = start_worker()
    scheduler_child(start_worker, worker, redis_conn)
    holder = redis_conn.get(LOCK)
    assert holder_is_gone(redis_conn, LOCK) is None
    assert not clear_stale_lock(redis_conn, LOCK)
    assert redis_conn.get(LOCK) == holder
    # a lock just taken, its holder still forking (no record yet), is left alone too
    redis_conn.set("rq:scheduler-lock:other", "newborn", ex=61)
    assert not clear_stale_lock(redis_conn, "rq:scheduler-lock:other")
    # a holder that stopped beating long ago is gone, wherever it ran
    redis_conn.hset("rq:scheduler:silent", mapping={
        "name": "silent", "hostname": "another-host", "pid": "1", "queues": "other",
        "created_at": "2026-01-01T00:00:00.000000Z",
        "last_heartbeat": "2026-01-01T00:00:00.000000Z"})
    redis_conn.set("rq:scheduler-lock:other", "silent", ex=61)
    assert clear_stale_lock(redis_conn, "rq:scheduler-lock:other")
    assert redis_conn.get("rq:scheduler-lock:other") is None
    # one that beat a moment ago on this host, but whose process has exited, is gone too
    import socket

    from rq.utils import now, utcformat

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(30)
    redis_conn.hset("rq:scheduler:ended", mapping={
        "name": "ended", "hostname": socket.gethostname(), "pid": str(ended.pid),
        "queues": "other", "created_at": utcformat(now()), "last_heartbeat": utcformat(now())})
    redis_conn.set("rq:scheduler-lock:other", "ended", ex=61)
    assert holder_is_gone(redis_conn, "rq:scheduler-lock:other") == "ended"
    # ... unlike the same record naming a live process (this test's own)
    redis_conn.hset("rq:scheduler:ended", "pid", str(os.getpid()))
    assert holder_is_gone(redis_conn, "rq:scheduler-lock:other") is None


def test_worker_started_by_the_dev_server_stops_when_that_parent_is_killed(
        app, redis_conn, start_worker, db_path):
    # what jobs/devserver.py does: start the worker naming itself as the parent to outlive
    socket_path = redis_conn.connection_pool.connection_kwargs["path"]
    code = ("import os, subprocess, sys, time\n"
            "env = {**os.environ, 'SHOPDESK_EXIT_WITH_PARENT': str(os.getpid())}\n"
            "w = subprocess.Popen(sys.argv[1:], env=env)\n"
            "print(w.pid, flush=True)\n"
            "time.sleep(600)\n")
    env = {**os.environ, "REDIS_URL": f"unix://{socket_path}",
           "DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": "test-secret-" + "x" * 32}
    parent = subprocess.Popen([sys.executable, "-c", code, sys.executable, "-m", "flask",
                               "--app", "app", "worker", "--no-sweep"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    start_worker.track(psutil.Process(parent.pid))
    worker = start_worker.track(psutil.Process(int(parent.stdout.readline())))

    class Handle:  # what scheduler_child expects of a worker
        pid = worker.pid

        @staticmethod
        def poll():
            return None if worker.is_running() else 1

    child = scheduler_child(start_worker, Handle, redis_conn)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    gone, alive = psutil.wait_procs([worker, child], timeout=10)
    assert alive == [], "the worker (or its scheduler) outlived the dev server"
    assert redis_conn.get(LOCK) is None  # stopped cleanly: the lock is released
