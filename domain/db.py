"""Database handle and transaction helpers shared by every domain module.

SQLite runs in WAL mode with a busy timeout. Domain actions open *immediate*
write transactions (BEGIN IMMEDIATE) so that two writers queue on the lock
instead of failing when one tries to upgrade a stale read snapshot.

On SQLite those actions also wait their turn in a queue of their own
(``_sqlite_writer_turn``) before BEGIN IMMEDIATE: SQLite's busy handler polls with
sleeps of up to 100 ms and lets whoever asks at the right moment in first, so
under load (a checkout rush: many threads in several gunicorn workers) some
writers waited 10+ seconds and a few hit the busy timeout ("database is locked").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)

# Set while a domain action runs, read by the SQLite "begin" hook below.
_write_intent: ContextVar[bool] = ContextVar("write_intent", default=False)

SQLITE_BUSY_TIMEOUT_MS = 15000


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, _record):
    if type(dbapi_connection).__module__.split(".")[0] not in ("sqlite3", "pysqlite2"):
        return
    # Take transaction control away from pysqlite so BEGIN is ours to emit.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(conn):
    if conn.dialect.name != "sqlite":
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")


@contextmanager
def write_transaction(*, keep_loaded: bool = False):
    """Run the body in one write transaction: commit on success, roll back on error.

    Any read transaction the caller has open is ended first, so the write
    starts from a fresh snapshot and takes the write lock up front.

    ``keep_loaded``: the rows the caller read just before stay loaded through that
    first commit instead of being expired (and so loaded again, one SELECT each,
    while the write lock is held). Only for an action that read them on purpose
    before the write and re-checks inside it whatever must still hold.
    """
    session = db.session
    if _write_intent.get():  # nested action: the outer one owns the transaction
        yield session
        return
    # Commit first, outside the queue: a pending write of this session holds SQLite's
    # lock, and waiting in the queue while holding it would block the writer ahead.
    if keep_loaded:
        real = session()
        real.expire_on_commit = False
        try:
            real.commit()
        finally:
            real.expire_on_commit = True
    else:
        session.commit()
    with _sqlite_writer_turn(session):
        token = _write_intent.set(True)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            _write_intent.reset(token)


# One turn at a time per process (threads), then per database file across processes
# (an flock on a small file in the temp dir, named by the database's path: never the
# database's own file, whose POSIX locks are SQLite's). Both wait without polling.
_writer_lock = threading.Lock()
_lock_fds: dict[str, int] = {}


def _lock_fd(database: str) -> int:
    real = os.path.realpath(database)
    fd = _lock_fds.get(real)
    if fd is None:
        fd = _lock_fds[real] = os.open(_lock_path(real), os.O_RDWR | os.O_CREAT, 0o600)
    return fd


def _lock_path(real: str) -> str:
    digest = hashlib.sha1(real.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"shopdesk-sqlite-writer-{digest}.lock")


def forget_writer_lock(database: str) -> None:
    """Close and delete a database's lock file, once the database itself is gone (tests:
    one per test database). Never while another process may still write to it: one
    holding the old file and one creating a new one would no longer exclude each other."""
    real = os.path.realpath(database)
    fd = _lock_fds.pop(real, None)
    if fd is not None:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.remove(_lock_path(real))


def _after_fork_in_child() -> None:
    # A fork (RQ's work horse) copies the lock as it was, maybe held by a thread the
    # child does not have, and shares the parent's lock files: start afresh.
    global _writer_lock
    _writer_lock = threading.Lock()
    for fd in _lock_fds.values():
        os.close(fd)  # the parent keeps its own copy (and any flock on it)
    _lock_fds.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def _sqlite_writer_turn(session):
    bind = session.get_bind()
    if bind.dialect.name != "sqlite":  # PostgreSQL queues writers on its row locks
        yield
        return
    database = bind.url.database or ""
    with _writer_lock:
        fd = None
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                fd = _lock_fd(database)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # no temp dir to lock in: SQLite's busy handler still applies
                fd = None
        try:
            yield
        finally:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)


def insert_ignoring_duplicates(model, *unique_columns: str):
    """INSERT ... ON CONFLICT (unique_columns) DO NOTHING, for SQLite and PostgreSQL:
    writing a row that exists already is a no-op rather than an error."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model).on_conflict_do_nothing(index_elements=list(unique_columns))


def utcnow() -> datetime:
    """Now in UTC, naive: every stored time is UTC without a zone (SQLite keeps none)."""
    return datetime.now(UTC).replace(tzinfo=None)
