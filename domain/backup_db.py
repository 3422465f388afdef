"""The database half of backup and restore, for SQLite and PostgreSQL.

A snapshot is a dump plus the row counts *of the same snapshot*, so the
manifest can prove the restore: on SQLite the dump is a copy made with the
online backup API (one step, so concurrent writers never make it restart) and
the counts are read from that static copy; on PostgreSQL a repeatable-read
transaction exports its snapshot, counts in it, and ``pg_dump --snapshot``
dumps exactly what it saw.

Restoring writes a checked database into place without a moment where the
target is half old, half new: on SQLite through the backup API into the live
file (SQLite's own locking, the WAL stays coherent); on PostgreSQL in one
psql transaction that drops the old schema and replays the dump, committed
only when ``pg_restore`` finished cleanly.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

from domain.errors import DomainError

CHUNK = 1 << 20
# Tables a fresh instance fills by itself (migrations, `init-store`, sign-in
# attempts, job rows): rows there do not make a database "hold data".
SETUP_TABLES = {"alembic_version", "store_settings", "payment_method", "shipping_method",
                "job", "login_throttle",
                "whatsapp_price", "whatsapp_config"}  # the seeded price; the channel's row, off


class BackupError(DomainError):
    """A refused backup or restore; the message says why and what to do.

    Like every refusal: one literal English message id with %(name)s parameters,
    translated by the web layer; ``str()`` is the English text for the CLI and logs.
    """

    def __init__(self, msgid: str, /, **params):
        Exception.__init__(self, msgid)
        self.msgid, self.params, self.plural, self.count = msgid, params, None, None

    def __str__(self) -> str:
        return self.msgid % self.params if self.params else self.msgid


@dataclass
class Snapshot:
    counts: dict[str, int]
    revision: str | None
    proof_paths: list[str]
    logo_name: str | None
    details: dict = field(default_factory=dict)  # sha256/size of a raw SQLite file, versions


def dialect_of(url: URL) -> str:
    name = url.get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise BackupError("Backups support SQLite and PostgreSQL, not %(name)s.", name=name)
    return name


# ------------------------------------------------------------------ SQLite


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    # Ordinary tables only: FTS virtual and shadow tables are derived indexes.
    rows = conn.execute("SELECT name FROM pragma_table_list WHERE schema = 'main' "
                        "AND type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    return [name for (name,) in rows]


def sqlite_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
            for name in _sqlite_tables(conn)}


def _sqlite_refs(conn: sqlite3.Connection, tables: set[str]) -> tuple[list[str], str | None]:
    proofs = [p for (p,) in conn.execute(
        "SELECT proof_path FROM orders WHERE proof_path IS NOT NULL")] if "orders" in tables else []
    logo = conn.execute("SELECT logo_path FROM store_settings WHERE id = 1").fetchone() \
        if "store_settings" in tables else None
    return proofs, (logo[0] if logo else None)


def _revision(rows) -> str | None:
    rows = list(rows)
    return rows[0][0] if rows else None


def sqlite_snapshot(db_path: Path, out_gz: Path) -> Snapshot:
    """Copy the live database (one backup step), check it, count it, gzip it to ``out_gz``."""
    if not db_path.is_file():
        raise BackupError("The database file %(path)s does not exist.", path=str(db_path))
    raw = out_gz.with_name(out_gz.name + ".raw")
    source = sqlite3.connect(db_path, timeout=15)
    try:
        target = sqlite3.connect(raw)
        try:
            source.backup(target)  # pages=-1: the whole file in one consistent step
            # A self-contained file in the archive, not one that expects a -wal beside it.
            target.execute("PRAGMA journal_mode=DELETE")
            # quick_check (page and record structure) keeps a large backup fast; the
            # restore runs the full integrity_check before anything is replaced.
            check = target.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise BackupError("The database copy failed its integrity check: %(result)s",
                                  result=str(check[:3]))
            counts = sqlite_counts(target)
            revision = _revision(target.execute("SELECT version_num FROM alembic_version")) \
                if "alembic_version" in counts else None
            proofs, logo = _sqlite_refs(target, set(counts))
        finally:
            target.close()
    finally:
        source.close()
    # Level 1: on a 200 MB database about 3x faster than level 6 for ~10% more bytes.
    digest, size = hashlib.sha256(), 0
    with open(raw, "rb") as src, gzip.open(out_gz, "wb", compresslevel=1) as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    raw.unlink()
    return Snapshot(counts, revision, proofs, logo, {"sha256": digest.hexdigest(), "size": size,
                                                     "sqlite_version": sqlite3.sqlite_version})


def sqlite_unpack(gz_path: Path, out: Path, sha256: str, size: int) -> None:
    """Decompress the archived database, refusing more bytes than the manifest names."""
    digest, written = hashlib.sha256(), 0
    try:
        with gzip.open(gz_path, "rb") as src, open(out, "wb") as dst:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > size:
                    raise BackupError("The archived database is larger than its manifest says.")
                digest.update(chunk)
                dst.write(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BackupError("The archived database cannot be decompressed: %(error)s",
                          error=str(exc)) from exc
    if written != size or digest.hexdigest() != sha256:
        raise BackupError("The archived database does not match its manifest checksum.")


def sqlite_check(path: Path) -> dict[str, int]:
    """PRAGMA integrity_check on a restored copy; its row counts."""
    conn = sqlite3.connect(path)
    try:
        try:
            check = conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise BackupError("The archived database is not a valid SQLite file: %(error)s",
                              error=str(exc)) from exc
        if check != [("ok",)]:
            raise BackupError("The archived database failed its integrity check: %(result)s",
                              result=str(check[:3]))
        return sqlite_counts(conn)
    finally:
        conn.close()


def sqlite_write_into_place(source_path: Path, db_path: Path) -> None:
    """Replace the live database's content with ``source_path`` in one SQLite transaction."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(source_path)
    try:
        target = sqlite3.connect(db_path, timeout=30)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()


def sqlite_live_counts(db_path: Path) -> dict[str, int]:
    if not db_path.exists():
        return {}
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return sqlite_counts(conn)
    finally:
        conn.close()


# ------------------------------------------------------------------ PostgreSQL


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password, and an environment carrying it (never argv)."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError("%(program)s is not installed; install postgresql-client "
                          "(the same major version as the server).", program=name)
    return path


def _major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    if not match:
        raise BackupError("Cannot read the version of %(program)s: %(output)s",
                          program=binary, output=out.strip())
    return int(match.group(1))


def _connect(url: URL):
    import psycopg

    uri, env = _libpq(url)
    # Autocommit: transactions are opened explicitly (the snapshot needs its own BEGIN).
    return psycopg.connect(uri, password=env.get("PGPASSWORD"), connect_timeout=10,
                           autocommit=True)


def _pg_counts(conn) -> dict[str, int]:
    from psycopg import sql

    names = [n for (n,) in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")]
    return {name: conn.execute(sql.SQL("SELECT count(*) FROM public.{}").format(
        sql.Identifier(name))).fetchone()[0] for name in names}


def postgres_snapshot(url: URL, out: Path) -> Snapshot:
    """pg_dump --format=custom of one exported snapshot, with that snapshot's counts."""
    pg_dump = _binary("pg_dump")
    client = _major(pg_dump)
    conn = _connect(url)
    try:
        server = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
        if client < server:
            raise BackupError("pg_dump is version %(client)s but the server is %(server)s: "
                              "install postgresql-client-%(server)s.", client=client,
                              server=server)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        counts = _pg_counts(conn)
        revision = _revision(conn.execute("SELECT version_num FROM alembic_version")) \
            if "alembic_version" in counts else None
        proofs = [p for (p,) in conn.execute(
            "SELECT proof_path FROM orders WHERE proof_path IS NOT NULL")] \
            if "orders" in counts else []
        logo = conn.execute("SELECT logo_path FROM store_settings WHERE id = 1").fetchone() \
            if "store_settings" in counts else None
        uri, env = _libpq(url)
        # The exporting transaction stays open until pg_dump has imported its snapshot.
        done = subprocess.run([pg_dump, "--format=custom", f"--snapshot={snapshot_id}",
                               f"--file={out}", "--dbname", uri],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError("pg_dump failed: %(error)s", error=done.stderr.strip()[-2000:])
        conn.execute("ROLLBACK")
    finally:
        conn.close()
    return Snapshot(counts, revision, proofs, logo[0] if logo else None,
                    {"server_major": server, "pg_dump_major": client})


def postgres_live_counts(url: URL) -> dict[str, int]:
    conn = _connect(url)
    try:
        return _pg_counts(conn)
    finally:
        conn.close()


def postgres_write_into_place(dump: Path, url: URL) -> None:
    """Drop the public schema and replay ``dump`` in one transaction, or change nothing.

    pg_restore turns the custom archive into SQL that psql runs inside our
    BEGIN; COMMIT is sent only after pg_restore exited cleanly, so a dump that
    breaks half way leaves an uncommitted transaction the server rolls back.
    """
    pg_restore, psql = _binary("pg_restore"), _binary("psql")
    uri, env = _libpq(url)
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        producer = subprocess.Popen(
            [pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges",
             "--file=-", str(dump)], stdout=subprocess.PIPE, stderr=restore_err, env=env)
        consumer = subprocess.Popen(
            [psql, "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname", uri, "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env)
        try:
            consumer.stdin.write(b"BEGIN;\nDROP SCHEMA IF EXISTS public CASCADE;\n"
                                 b"CREATE SCHEMA public;\n")
            while chunk := producer.stdout.read(CHUNK):
                consumer.stdin.write(chunk)
            if producer.wait() == 0:
                consumer.stdin.write(b"COMMIT;\n")
            consumer.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped on an error: reported below
        finally:
            if producer.poll() is None:
                producer.kill()
            producer.wait()
            consumer.wait()
        restore_err.seek(0)
        psql_err.seek(0)
        if producer.returncode != 0:
            raise BackupError("pg_restore failed; the database was not changed: %(error)s",
                              error=restore_err.read().decode(errors="replace").strip()[-2000:])
        if consumer.returncode != 0:
            raise BackupError("psql refused the restore; the database was not changed: "
                              "%(error)s",
                              error=psql_err.read().decode(errors="replace").strip()[-2000:])


# ------------------------------------------------------------------ either


def live_counts(url: URL) -> dict[str, int]:
    if dialect_of(url) == "sqlite":
        return sqlite_live_counts(Path(url.database))
    return postgres_live_counts(url)


def tables_holding_data(url: URL) -> list[str]:
    """Tables (other than what a fresh instance fills by itself) that have rows."""
    return sorted(t for t, n in live_counts(url).items() if n and t not in SETUP_TABLES)
