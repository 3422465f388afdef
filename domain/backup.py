"""Online backup and verified restore of the whole store (issue 15).

One archive per backup: an uncompressed tar named
``shopdesk-backup-YYYYMMDDTHHMMSSZ.tar`` (0600, written under a temporary name
and renamed into place) holding

- ``database/shopdesk.sqlite3.gz`` (an online-backup copy, gzipped) or
  ``database/shopdesk.pgdump`` (``pg_dump --format=custom``, compressed);
- ``uploads/...``: payment proofs, their thumbnails and the logo;
- ``manifest.json``, written last: format version, creation time, dialect,
  Alembic revision, row counts per table of the dumped snapshot, and the size
  and sha256 of every other member.

GENERATED_FOLDER is left out on purpose: it holds only exports and documents
rebuilt from the database on demand. Because the manifest is the last member,
a truncated archive always loses it or a member it vouches for.

Restore verifies everything before it changes anything: only regular files
with plain relative names under the known folders, every member listed with
the right size and hash, nothing extra, the database's own checks. The
checksums catch damage and truncation, not a forger who rewrites the
manifest too: keep archives private (they hold customers' details).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

from flask import current_app

from domain import backup_db
from domain.backup_archive import (
    DB_MEMBERS,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    UPLOADS,
    add_file,
    stage,
    summary,
    tar_member,
    verify_archive,
)
from domain.backup_db import BackupError
from domain.db import db
from domain.proofs import thumbnail_path

__all__ = ["BackupError", "create_backup", "restore_backup", "verify_archive", "list_backups",
           "latest_backup", "prune_backups", "default_backup_dir"]

NAME_RE = re.compile(r"^shopdesk-backup-(\d{8}T\d{6}Z)(?:-(\d{1,3}))?\.tar$")
Progress = Callable[[int, int], None]


@dataclass
class BackupResult:
    path: Path
    manifest: dict
    seconds: float


@dataclass
class RestoreReport:
    manifest: dict
    counts: dict[str, int]
    files: int
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass
class BackupInfo:
    name: str
    path: Path
    created_at: datetime  # naive UTC, from the name
    size: int
    orders: int | None
    problem: str = ""


def default_backup_dir() -> Path:
    """BACKUP_FOLDER, else $SHOPDESK_BACKUP_DIR, else instance/backups."""
    configured = current_app.config.get("BACKUP_FOLDER") or os.environ.get("SHOPDESK_BACKUP_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "backups"


def _upload_root() -> Path:
    return Path(current_app.config["UPLOAD_FOLDER"])


# ------------------------------------------------------------------ writing an archive


def _upload_files(root: Path, skip: Path) -> list[tuple[str, Path]]:
    """Regular files under UPLOAD_FOLDER (no links, no half-written *.part), sorted."""
    found = []
    skip = skip.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if (here / d).resolve() != skip)
        for name in sorted(filenames):
            path = here / name
            if name.endswith(".part") or path.is_symlink() or not path.is_file():
                continue
            found.append((path.relative_to(root).as_posix(), path))
    return found


def _archive_name(dest: Path, created: datetime) -> str:
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    for n in range(1000):
        name = f"shopdesk-backup-{stamp}{f'-{n}' if n else ''}.tar"
        if not (dest / name).exists():
            return name
    raise BackupError("Too many backups in the same second.")


class _Lock:
    """One backup or prune at a time per folder (the timer and the button may meet)."""

    def __init__(self, dest: Path):
        self.path = dest / ".lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise BackupError("Another backup is running in this folder; try again shortly.") \
                from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_backup(dest: Path | str | None = None, *, progress: Progress | None = None,
                  now: datetime | None = None) -> BackupResult:
    """Back up the database and the uploads into one new archive in ``dest``."""
    started = time.perf_counter()
    dest = Path(dest) if dest else default_backup_dir()
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = db.engine.url
    dialect = backup_db.dialect_of(url)
    db.session.remove()  # no open read transaction of ours while the dump runs
    with _Lock(dest):
        created = (now or datetime.now(UTC)).astimezone(UTC)
        name = _archive_name(dest, created)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest))
        part = dest / f".{name}.part"
        try:
            db_file = staging / DB_MEMBERS[dialect].rsplit("/", 1)[1]
            if dialect == "sqlite":
                snap = backup_db.sqlite_snapshot(Path(url.database), db_file)
            else:
                snap = backup_db.postgres_snapshot(url, db_file)
            # Files after the database: every proof the snapshot names was written
            # before its row committed, so it is on disk now (unless since deleted).
            uploads = _upload_files(_upload_root(), skip=dest)
            total = len(uploads) + 1
            entries = []
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    entries.append(add_file(tar, DB_MEMBERS[dialect], db_file))
                    if progress:
                        progress(1, total)
                    for done, (relative, path) in enumerate(uploads, start=2):
                        entry = add_file(tar, UPLOADS + relative, path)
                        if entry:
                            entries.append(entry)
                        if progress and (done % 100 == 0 or done == total):
                            progress(done, total)
                    manifest = _manifest(created, dialect, snap, entries)
                    data = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
                    tar.addfile(tar_member(MANIFEST, len(data), time.time()), BytesIO(data))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(part, dest / name)
            _fsync_dir(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            part.unlink(missing_ok=True)
    return BackupResult(dest / name, manifest, time.perf_counter() - started)


def _manifest(created: datetime, dialect: str, snap: backup_db.Snapshot,
              entries: list[dict]) -> dict:
    referenced = set()
    for proof in snap.proof_paths:
        referenced.add(proof)
        if thumb := thumbnail_path(proof):
            referenced.add(thumb)
    if snap.logo_name:
        referenced.add(f"logo/{snap.logo_name}")
    included = {e["path"].removeprefix(UPLOADS) for e in entries}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "dialect": dialect,
        "alembic_revision": snap.revision,
        "database": {"member": DB_MEMBERS[dialect], **snap.details},
        "tables": snap.counts,
        "files": entries,
        # Rows that name a file the uploads folder no longer had when it was read.
        "missing_files": sorted(referenced - included),
        "excluded": {"GENERATED_FOLDER": "exports and documents, rebuilt from the database"},
    }


def list_backups(dest: Path | str | None = None) -> list[BackupInfo]:
    """Archives in ``dest``, newest first (only names this module writes)."""
    dest = Path(dest) if dest else default_backup_dir()
    if not dest.is_dir():
        return []
    found = []
    for entry in os.scandir(dest):
        match = NAME_RE.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        st = entry.stat(follow_symlinks=False)
        orders, problem = summary(entry.path, st.st_mtime_ns, st.st_size)
        created = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ")
        found.append(BackupInfo(entry.name, Path(entry.path), created, st.st_size, orders,
                                problem))
    found.sort(key=lambda b: (b.created_at, int(NAME_RE.match(b.name).group(2) or 0)),
               reverse=True)
    return found


def latest_backup(dest: Path | str | None = None) -> BackupInfo | None:
    return next((b for b in list_backups(dest) if not b.problem), None)


# ------------------------------------------------------------------ restore


def _check_revision(revision: str | None) -> None:
    if revision is None:
        raise BackupError("The backup's database has no Alembic revision.")
    migrate = current_app.extensions.get("migrate")
    if migrate is None:
        return
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        found = ScriptDirectory(migrate.directory).get_revision(revision)
    except CommandError:
        found = None
    if found is None:
        raise BackupError("The backup is at database revision %(revision)s, which this "
                          "version of Shopdesk does not know: install the newer version first.",
                          revision=revision)


def _head_revision() -> str | None:
    migrate = current_app.extensions.get("migrate")
    if migrate is None:
        return None
    from alembic.script import ScriptDirectory

    return ScriptDirectory(migrate.directory).get_current_head()


def restore_backup(archive: Path | str, *, force: bool = False,
                   progress: Progress | None = None) -> RestoreReport:
    """Verify ``archive``, then write its database and uploads into this instance."""
    started = time.perf_counter()
    archive = Path(archive)
    manifest = verify_archive(archive)
    url = db.engine.url
    dialect = backup_db.dialect_of(url)
    if manifest["dialect"] != dialect:
        raise BackupError("This backup is of a %(theirs)s database; this instance uses "
                          "%(ours)s.", theirs=manifest["dialect"], ours=dialect)
    _check_revision(manifest.get("alembic_revision"))
    db.session.remove()
    db.engine.dispose()
    holding = backup_db.tables_holding_data(url)
    if holding and not force:
        raise BackupError("The database already holds data (%(tables)s). Restoring would "
                          "replace it: add --force to do so.", tables=", ".join(holding))
    uploads = _upload_root()
    uploads.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=uploads.parent))
    files = [f for f in manifest["files"] if f["path"].startswith(UPLOADS)]
    try:
        # 1. Everything to a private staging folder, checked, before touching the instance.
        db_entry = next(f for f in manifest["files"] if f["path"] == DB_MEMBERS[dialect])
        dump = staging / "database"
        wanted = {db_entry["path"]: (db_entry, dump)}
        staged = []
        for i, entry in enumerate(files):
            out = staging / f"file-{i}"
            wanted[entry["path"]] = (entry, out)
            staged.append((out, uploads / entry["path"].removeprefix(UPLOADS)))
        stage(archive, wanted)
        if dialect == "sqlite":
            raw = staging / "restored.db"
            details = manifest["database"]
            backup_db.sqlite_unpack(dump, raw, details.get("sha256", ""), details.get("size", -1))
            counts = backup_db.sqlite_check(raw)
            if counts != manifest["tables"]:
                raise BackupError("The archived database's row counts differ from its "
                                  "manifest; nothing was changed.")
        for _, target in staged:
            if not target.resolve().is_relative_to(uploads.resolve()):
                raise BackupError("%(path)s would be written outside the uploads folder.",
                                  path=str(target))
        # 2. Into place: the files first (harmless extras if the database step fails).
        for source, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(source, target)
        if progress:
            progress(len(staged), len(staged) + 1)
        if dialect == "sqlite":
            backup_db.sqlite_write_into_place(raw, Path(url.database))
        else:
            backup_db.postgres_write_into_place(dump, url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        db.engine.dispose()
    counts = backup_db.live_counts(url)
    if counts != manifest["tables"]:
        differ = sorted(t for t in set(counts) | set(manifest["tables"])
                        if counts.get(t) != manifest["tables"].get(t))
        raise BackupError("Restored, but the row counts differ from the manifest in: "
                          "%(tables)s", tables=", ".join(differ))
    notes = []
    head = _head_revision()
    if head and manifest["alembic_revision"] != head:
        notes.append(f"The backup is at revision {manifest['alembic_revision']}; run "
                     "`flask --app app db upgrade` to bring it to this version's schema.")
    if manifest.get("missing_files"):
        notes.append("%(n)d file(s) named by the database were already missing when the "  # noqa: UP031
                     "backup was taken." % {"n": len(manifest["missing_files"])})
    return RestoreReport(manifest, counts, len(staged), time.perf_counter() - started, notes)


# ------------------------------------------------------------------ retention


def backups_to_keep(backups: list[BackupInfo], keep_daily: int = 7,
                    keep_weekly: int = 4) -> set[str]:
    """Newest archive of each of the last ``keep_daily`` days and ``keep_weekly`` ISO weeks
    that have one (UTC), plus the newest of all."""
    keep, days, weeks = set(), set(), set()
    for backup in sorted(backups, key=lambda b: b.created_at, reverse=True):
        day, week = backup.created_at.date(), backup.created_at.isocalendar()[:2]
        if not keep:
            keep.add(backup.name)
        if day not in days and len(days) < keep_daily:
            days.add(day)
            keep.add(backup.name)
        if week not in weeks and len(weeks) < keep_weekly:
            weeks.add(week)
            keep.add(backup.name)
    return keep


def prune_backups(dest: Path | str | None = None, *, keep_daily: int = 7,
                  keep_weekly: int = 4) -> list[str]:
    """Delete archives outside the retention, and leftovers of interrupted runs."""
    dest = Path(dest) if dest else default_backup_dir()
    if not dest.is_dir():
        return []
    with _Lock(dest):
        backups = list_backups(dest)
        keep = backups_to_keep(backups, keep_daily, keep_weekly)
        removed = []
        for backup in backups:
            if backup.name not in keep:
                backup.path.unlink(missing_ok=True)
                removed.append(backup.name)
        stale = time.time() - timedelta(days=1).total_seconds()
        for entry in os.scandir(dest):
            if (entry.name.startswith((".staging-", ".shopdesk-backup-"))
                    and entry.stat(follow_symlinks=False).st_mtime < stale):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
    return removed
