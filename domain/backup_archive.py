"""The archive format of backups: writing members with their hashes, reading and
verifying a possibly hostile archive (see domain.backup for the layout).

Nothing here trusts the archive: members must be regular files with plain
relative names under the folders a backup holds, each listed once in the
manifest with its size and sha256; anything else is refused before a single
byte reaches the instance.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tarfile
from functools import lru_cache
from pathlib import Path

from domain.backup_db import BackupError

FORMAT = "shopdesk-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_MEMBERS = {"sqlite": "database/shopdesk.sqlite3.gz", "postgresql": "database/shopdesk.pgdump"}
UPLOADS = "uploads/"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
CHUNK = 1 << 20


class HashingReader:
    """What tarfile reads a member from: the bytes pass through sha256 on the way."""

    def __init__(self, fileobj):
        self.fileobj, self.digest, self.size = fileobj, hashlib.sha256(), 0

    def read(self, n=-1):
        chunk = self.fileobj.read(n)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def tar_member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, int(mtime), 0o600, tarfile.REGTYPE
    return info


def add_file(tar: tarfile.TarFile, name: str, path: Path) -> dict | None:
    """Add one file without following links; None when it vanished or is not a file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP):
            return None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000) == 0o100000:
            return None
        reader = HashingReader(fh)
        tar.addfile(tar_member(name, st.st_size, st.st_mtime), reader)
    return {"path": name, "size": reader.size, "sha256": reader.digest.hexdigest()}


def safe_name(name: str) -> bool:
    parts = name.split("/")
    return (bool(name) and not name.startswith("/") and "\\" not in name and "\0" not in name
            and all(p not in ("", ".", "..") for p in parts))


def check_member(member: tarfile.TarInfo) -> None:
    if not member.isreg() or member.issparse():
        raise BackupError("The archive contains %(name)r, which is not a plain file "
                          "(links and devices are refused).", name=member.name)
    if not safe_name(member.name):
        raise BackupError("The archive contains an unsafe path %(name)r.", name=member.name)
    if not (member.name == MANIFEST or member.name in DB_MEMBERS.values()
            or member.name.startswith(UPLOADS)):
        raise BackupError("The archive contains %(name)r, which a Shopdesk backup "
                          "never holds.", name=member.name)


def open_archive(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise BackupError("%(path)s does not exist or is not a file.", path=str(path))
    try:
        return tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        raise BackupError("%(file)s is not a Shopdesk backup archive: %(error)s",
                          file=path.name, error=str(exc)) from exc


def hash_member(tar: tarfile.TarFile, member: tarfile.TarInfo, sink=None) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    stream = tar.extractfile(member)
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return size, digest.hexdigest()


def parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise BackupError("The manifest is not valid JSON: %(error)s", error=str(exc)) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("The manifest is not a Shopdesk backup manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError("This backup has format version %(version)r; this Shopdesk reads "
                          "version %(mine)d.", version=manifest.get("format_version"),
                          mine=FORMAT_VERSION)
    files, tables = manifest.get("files"), manifest.get("tables")
    database = manifest.get("database")
    if (manifest.get("dialect") not in DB_MEMBERS or not isinstance(files, list)
            or not isinstance(tables, dict) or not isinstance(database, dict)
            or not isinstance(manifest.get("alembic_revision"), str)
            or (manifest["dialect"] == "sqlite" and not (
                isinstance(database.get("sha256"), str) and isinstance(database.get("size"), int)))
            or not all(isinstance(n, int) and n >= 0 for n in tables.values())
            or not all(isinstance(f, dict) and isinstance(f.get("path"), str)
                       and isinstance(f.get("size"), int) and isinstance(f.get("sha256"), str)
                       for f in files)):
        raise BackupError("The manifest is incomplete or malformed.")
    return manifest


def verify_archive(path: Path | str) -> dict:
    """Read every member, check it against the manifest; the manifest, or BackupError."""
    path = Path(path)
    seen: dict[str, tuple[int, str]] = {}
    manifest_bytes = None
    with open_archive(path) as tar:
        try:
            for member in tar:
                check_member(member)
                if member.name in seen or (member.name == MANIFEST and manifest_bytes):
                    raise BackupError("The archive holds %(name)r twice.", name=member.name)
                if member.name == MANIFEST:
                    if member.size > MAX_MANIFEST_BYTES:
                        raise BackupError("The manifest is implausibly large.")
                    manifest_bytes = tar.extractfile(member).read()
                    if len(manifest_bytes) != member.size:
                        raise tarfile.ReadError("unexpected end of data")
                else:
                    seen[member.name] = hash_member(tar, member)
                    if seen[member.name][0] != member.size:
                        raise tarfile.ReadError("unexpected end of data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError("%(file)s is truncated or damaged (%(error)s); "
                              "nothing was restored.", file=path.name, error=str(exc)) from exc
    if manifest_bytes is None:
        raise BackupError("%(file)s has no manifest: it is truncated or not a Shopdesk "
                          "backup.", file=path.name)
    manifest = parse_manifest(manifest_bytes)
    listed = {}
    for entry in manifest["files"]:
        if entry["path"] in listed or not safe_name(entry["path"]):
            raise BackupError("The manifest lists %(name)r twice or unsafely.",
                              name=entry["path"])
        listed[entry["path"]] = (entry["size"], entry["sha256"])
    db_member = DB_MEMBERS[manifest["dialect"]]
    if db_member not in listed:
        raise BackupError("The manifest does not list the database.")
    for name in sorted(set(listed) | set(seen)):
        if name not in seen:
            raise BackupError("%(name)s is listed in the manifest but missing from the "
                              "archive.", name=name)
        if name not in listed:
            raise BackupError("%(name)s is in the archive but not in its manifest.", name=name)
        if seen[name] != listed[name]:
            raise BackupError("%(name)s does not match its checksum in the manifest: the "
                              "archive is damaged or was altered.", name=name)
    return manifest


@lru_cache(maxsize=256)
def summary(path: str, _mtime_ns: int, _size: int) -> tuple[int | None, str]:
    """Order count from the manifest (headers only: no hashing), cached per file version."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            member = tar.getmember(MANIFEST)
            if member.size > MAX_MANIFEST_BYTES:
                return None, "unreadable"
            manifest = parse_manifest(tar.extractfile(member).read())
    except (KeyError, tarfile.TarError, OSError, EOFError, BackupError):
        return None, "unreadable"
    return manifest["tables"].get("orders"), ""


def stage(archive: Path, wanted: dict[str, tuple[dict, Path]]) -> None:
    """Write the wanted members to their staging paths (0600) in one pass over the
    archive, re-checking each hash: the file may have changed since it was verified."""
    written = set()
    try:
        with open_archive(archive) as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                check_member(member)
                entry, out = wanted[member.name]
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as sink:
                    got = hash_member(tar, member, sink)
                if got != (entry["size"], entry["sha256"]) or member.name in written:
                    raise BackupError("%(name)s changed while it was being restored; "
                                      "nothing was changed.", name=member.name)
                written.add(member.name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BackupError("The archive changed while it was being restored (%(error)s); "
                          "nothing was changed.", error=str(exc)) from exc
    if written != set(wanted):
        raise BackupError("The archive changed while it was being restored; nothing was changed.")
