"""Database handle and transaction helpers shared by every domain module.

SQLite runs in WAL mode with a busy timeout. Domain actions open *immediate*
write transactions (BEGIN IMMEDIATE) so that two writers queue on the lock
instead of failing when one tries to upgrade a stale read snapshot.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

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
def write_transaction():
    """Run the body in one write transaction: commit on success, roll back on error.

    Any read transaction the caller has open is ended first, so the write
    starts from a fresh snapshot and takes the write lock up front.
    """
    session = db.session
    if _write_intent.get():  # nested action: the outer one owns the transaction
        yield session
        return
    session.commit()
    token = _write_intent.set(True)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        _write_intent.reset(token)


def insert_ignoring_duplicates(model, *unique_columns: str):
    """INSERT ... ON CONFLICT (unique_columns) DO NOTHING, for SQLite and PostgreSQL:
    writing a row that exists already is a no-op rather than an error."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model).on_conflict_do_nothing(index_elements=list(unique_columns))
