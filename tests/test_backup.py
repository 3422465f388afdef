"""Backup and restore (issue 15) with real files, real threads and real archives.

- a backup taken while 20 threads place orders (and upload proofs) is a
  consistent snapshot: its counts match the restored database, every order
  has its lines and events, stock and held quantities reconcile;
- a restore into a fresh instance is identical row by row, file by hash;
- damaged and hostile archives are refused and change nothing;
- a database that holds data is replaced only with --force;
- the same on PostgreSQL (tests/test_backup_postgres.py style fixtures below);
- the owner-only Backups page.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import threading
import time
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from conftest import fill_payment_details
from sqlalchemy import func, inspect, select, text

from app import create_app
from domain.actors import Actor
from domain.backup import (
    BackupError,
    BackupInfo,
    backups_to_keep,
    create_backup,
    list_backups,
    prune_backups,
    restore_backup,
)
from domain.db import db
from domain.models import Job, Order, OrderLine, PaymentMethod, ShippingMethod, Variant
from domain.orders import Checkout, CustomerDetails, place_order, reject_order
from domain.proofs import submit_proof
from domain.store import set_store_logo

pytest_plugins = ["jobs_fixtures"]

THREADS = 20
STAFF = Actor("staff", 1, "Backup tester")


# ------------------------------------------------------------------ helpers


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upload_hashes(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): sha256(p) for p in root.rglob("*") if p.is_file()}


def all_rows() -> dict[str, list[tuple]]:
    """Every row of every table of the current app's database, in a stable order."""
    db.session.remove()
    rows = {}
    with db.engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            rows[table] = sorted((tuple(r) for r in result), key=repr)
    return rows


def table_counts() -> dict[str, int]:
    db.session.remove()
    with db.engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar()
                for t in inspect(conn).get_table_names()}


def assert_consistent(manifest: dict, variant_stock: dict[int, int], uploads: Path) -> None:
    """The invariants a consistent snapshot keeps, checked on the current app's database."""
    db.session.remove()
    counts = table_counts()
    for table, n in manifest["tables"].items():
        assert counts[table] == n, table
    placed = db.session.scalars(select(Order).where(Order.kind == "placed")).all()
    assert placed, "the backup holds orders"
    for order in placed:
        assert order.lines, order.number
        assert any(e.type == "order_placed" for e in order.events), order.number
        if order.proof_path:
            assert (uploads / order.proof_path).is_file(), order.proof_path
            assert any(e.type == "proof_uploaded" for e in order.events)
    # stock + what live orders hold = what the store started with, per variant
    for variant_id, initial in variant_stock.items():
        held = db.session.scalar(
            select(func.coalesce(func.sum(OrderLine.quantity), 0))
            .join(Order, Order.id == OrderLine.order_id)
            .where(OrderLine.variant_id == variant_id, Order.kind == "placed",
                   Order.status != "canceled"))
        assert db.session.get(Variant, variant_id).stock + held == initial, variant_id


def png_bytes(colour: str) -> bytes:
    from jobs_fixtures import image_bytes

    return image_bytes("PNG", colour=colour)


def make_stock(n_variants: int = 4, stock: int = 1_000_000) -> dict[int, int]:
    from domain.models import Product

    made = {}
    for i in range(n_variants):
        product = Product(name=f"曲奇 {i}")
        db.session.add(product)
        db.session.flush()
        variant = Variant(product_id=product.id, name="原味", sku=f"BK-{i}-{time.time_ns()}",
                          barcode=f"4890000{i:06d}", price_cents=1000 + i, stock=stock)
        db.session.add(variant)
        db.session.flush()
        made[variant.id] = stock
    db.session.commit()
    return made


def place_under_load(app, variants: list[int], during, *, per_thread_after: int = 3):
    """20 threads place orders (every third uploads a proof) before, during and after
    ``during()``; returns its result and the order counts just before and after it."""
    pay = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    ship = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    colours = ["red", "green", "blue", "yellow"]
    db.session.remove()
    started, stop = threading.Event(), threading.Event()
    placed = [0] * THREADS
    errors: list[BaseException] = []

    def buyer(i: int):
        with app.app_context():
            try:
                n = extra = 0
                while extra < per_thread_after:
                    order = place_order(Checkout(
                        customer=CustomerDetails(name=f"買家{i}", phone=f"9{i:03d} {n:04d}",
                                                 address="旺角"),
                        items=[(variants[(i + n) % len(variants)], 1 + n % 3)],
                        payment_method_id=pay, shipping_method_id=ship))
                    if n % 3 == 0:
                        submit_proof(order.id, BytesIO(png_bytes(colours[n % 4])))
                    if n % 7 == 6:
                        reject_order(order.id, "out of stock", actor=STAFF)
                    n += 1
                    placed[i] = n
                    if sum(placed) >= 2 * THREADS:
                        started.set()
                    if stop.is_set():  # a few more after the backup, so writes outlast it
                        extra += 1
                    # A short pause, as between real customers: 20 threads that never
                    # pause starve each other of the GIL and of SQLite's write lock.
                    time.sleep(0.02)
            except BaseException as exc:  # reported by the caller
                errors.append(exc)
                started.set()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=buyer, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    assert started.wait(60)
    with app.app_context():
        before = db.session.scalar(select(func.count(Order.id)))
        db.session.remove()
        result = during()
        after = db.session.scalar(select(func.count(Order.id)))
        db.session.remove()
    stop.set()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    return result, before, after


def fresh_app(migrated_db, folder: Path):
    """Another instance in its own folder: a migrated, empty database and no uploads."""
    folder.mkdir()
    shutil.copy(migrated_db, folder / "shopdesk.db")
    return create_app({
        "TESTING": True, "SECRET_KEY": "fresh",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'shopdesk.db'}",
        "UPLOAD_FOLDER": str(folder / "uploads"), "GENERATED_FOLDER": str(folder / "generated"),
        "BACKUP_FOLDER": str(folder / "backups"),
    })


@pytest.fixture
def backups(app, tmp_path):
    folder = tmp_path / "backups"
    app.config["BACKUP_FOLDER"] = str(folder)
    return folder


@pytest.fixture
def store(app, make_order, make_variant, owner):
    """A small real store: orders in several states, a proof with its thumbnail, a logo."""
    set_store_logo(BytesIO(png_bytes("purple")))
    variant = make_variant(stock=20)
    orders = [make_order(items=[(variant.id, 2)], name=f"陳{i}") for i in range(5)]
    submit_proof(orders[0].id, BytesIO(png_bytes("red")))
    reject_order(orders[1].id, "客人取消", actor=STAFF)
    make_order(payment="credit_card")
    return orders


# ------------------------------------------------------------------ SQLite


@pytest.mark.slow
def test_backup_while_twenty_threads_place_orders_is_consistent(app, backups, migrated_db,
                                                                 tmp_path):
    # given a store with some history, so the copy takes a moment
    from domain.demo import seed_demo

    seed_demo(1000, 3)
    variants = make_stock()
    uploads = Path(app.config["UPLOAD_FOLDER"])

    # when a backup runs while 20 threads keep placing orders and uploading proofs
    result, before, after = place_under_load(app, list(variants), lambda: create_backup())
    manifest = result.manifest
    print(f"backup under load: {result.seconds:.2f}s, orders {before} -> "
          f"{manifest['tables']['orders']} (snapshot) -> {after}")

    # then the threads kept writing through the backup, and the snapshot is one instant
    final = db.session.scalar(select(func.count(Order.id)))
    assert before <= manifest["tables"]["orders"] <= after < final
    assert manifest["missing_files"] == []
    assert any(f["path"].startswith("uploads/proofs/") for f in manifest["files"])
    # and it restores into a fresh instance with exactly the manifest's rows
    other = fresh_app(migrated_db, tmp_path / "fresh")
    with other.app_context():
        report = restore_backup(result.path)
        assert report.counts == manifest["tables"]
        assert_consistent(manifest, variants, Path(other.config["UPLOAD_FOLDER"]))
        restored_files = upload_hashes(Path(other.config["UPLOAD_FOLDER"]))
        db.session.remove()
        db.engine.dispose()
    # every file in the backup is byte-identical to the source's
    source_files = upload_hashes(uploads)
    assert restored_files and all(source_files[k] == v for k, v in restored_files.items())


def test_archive_is_private_timestamped_and_lists_every_file(app, store, backups):
    result = create_backup()
    assert result.path.parent == backups
    assert result.path.name.startswith("shopdesk-backup-") and result.path.suffix == ".tar"
    assert result.path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in backups.iterdir()) == [".lock", result.path.name]  # no temp
    manifest = result.manifest
    assert manifest["format_version"] == 1 and manifest["dialect"] == "sqlite"
    assert manifest["alembic_revision"] and manifest["tables"]["orders"] == 6
    uploads = Path(app.config["UPLOAD_FOLDER"])
    listed = {f["path"]: f for f in manifest["files"]}
    for relative, digest in upload_hashes(uploads).items():
        assert listed["uploads/" + relative]["sha256"] == digest
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
        assert names[-1] == "manifest.json"
        assert json.load(tar.extractfile("manifest.json")) == manifest
        assert "database/shopdesk.sqlite3.gz" in names
        assert not any(n.startswith("generated") for n in names)
    assert [b.name for b in list_backups()] == [result.path.name]
    assert list_backups()[0].orders == 6


def test_restore_into_a_fresh_instance_is_identical(app, store, backups, migrated_db, tmp_path):
    # given a backup made through the CLI
    out = app.test_cli_runner().invoke(args=["backup", "--to", str(backups)])
    assert out.exit_code == 0, out.output
    archive = next(backups.glob("shopdesk-backup-*.tar"))
    source_rows, source_files = all_rows(), upload_hashes(Path(app.config["UPLOAD_FOLDER"]))
    assert source_files and source_rows["orders"]

    # when it is restored into another instance
    other = fresh_app(migrated_db, tmp_path / "fresh")
    with other.app_context():
        result = other.test_cli_runner().invoke(args=["restore", str(archive)])
        assert result.exit_code == 0, result.output
        assert "row counts of" in result.output and "match the manifest" in result.output
        # then every row of every table and every file are identical
        assert all_rows() == source_rows
        assert upload_hashes(Path(other.config["UPLOAD_FOLDER"])) == source_files
        db.session.remove()
        db.engine.dispose()


def test_restore_refuses_a_database_with_data_unless_forced(app, store, backups, make_order):
    result = create_backup()
    make_order(name="after the backup")
    rows = all_rows()
    with pytest.raises(BackupError, match="already holds data.*--force"):
        restore_backup(result.path)
    assert all_rows() == rows  # nothing changed

    out = app.test_cli_runner().invoke(args=["restore", str(result.path)])
    assert out.exit_code != 0 and "--force" in out.output
    assert all_rows() == rows

    report = restore_backup(result.path, force=True)
    assert report.counts["orders"] == 6
    assert db.session.scalar(select(func.count(Order.id))) == 6
    assert not db.session.scalar(select(Order).where(Order.customer_name == "after the backup"))


# ------------------------------------------------------------------ hostile archives


def _rewrite(source: Path, out: Path, *, drop=(), add=(), manifest_edit=None,
             keep_manifest_hashes=False, manifest_raw: bytes | None = None):
    """Copy an archive member by member, dropping/adding members; the manifest is
    recomputed (so only the intended defect remains) unless told otherwise."""
    members = []
    with tarfile.open(source) as tar:
        for m in tar.getmembers():
            members.append((m, tar.extractfile(m).read()))
    manifest = json.loads(dict((m.name, d) for m, d in members)["manifest.json"])
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for m, data in members:
            if m.name in drop or m.name == "manifest.json":
                continue
            tar.addfile(m, BytesIO(data))
        for info, data in add:
            tar.addfile(info, BytesIO(data) if data is not None else None)
            if info.isreg() and not keep_manifest_hashes:
                manifest["files"].append({"path": info.name, "size": len(data),
                                          "sha256": hashlib.sha256(data).hexdigest()})
        if manifest_edit:
            manifest_edit(manifest)
        if "manifest.json" not in drop:
            body = manifest_raw if manifest_raw is not None else json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(body)
            tar.addfile(info, BytesIO(body))
    return out


def _flip_byte_in(archive: Path, member_name: str, out: Path) -> Path:
    shutil.copy(archive, out)
    with tarfile.open(out) as tar:
        member = tar.getmember(member_name)
        offset = member.offset_data + member.size // 2
    with open(out, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))
    return out


def _regular(name: str, data: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.fixture
def good_archive(app, store, backups):
    return create_backup().path


def _hostile(good: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Each damaged archive, with the refusal it must get."""
    folder.mkdir()
    with tarfile.open(good) as tar:
        proof = next(n for n in tar.getnames() if n.startswith("uploads/proofs/"))
        manifest = tar.getmember("manifest.json")
    data = good.read_bytes()
    (folder / "truncated.tar").write_bytes(data[: len(data) // 2])
    (folder / "truncated-end.tar").write_bytes(data[: manifest.offset_data + manifest.size // 2])
    (folder / "empty.tar").write_bytes(b"")
    (folder / "not-a-tar.tar").write_bytes(b"hello " * 1000)

    def corrupt_manifest(m):
        m["tables"]["orders"] = "many"

    return {
        "truncated": (folder / "truncated.tar", "truncated or damaged|no manifest"),
        "truncated in the manifest": (folder / "truncated-end.tar", "truncated or damaged"),
        "empty file": (folder / "empty.tar", "not a Shopdesk backup|no manifest"),
        "not a tar": (folder / "not-a-tar.tar", "not a Shopdesk backup"),
        "db byte flipped": (_flip_byte_in(good, "database/shopdesk.sqlite3.gz",
                                          folder / "flip-db.tar"), "database.*checksum"),
        "proof byte flipped": (_flip_byte_in(good, proof, folder / "flip-proof.tar"),
                               "does not match its checksum"),
        "manifest hash wrong": (_rewrite(good, folder / "hash.tar", manifest_edit=lambda m: [
            f.update(sha256="0" * 64) for f in m["files"] if f["path"] == proof]),
            "does not match its checksum"),
        "missing manifest": (_rewrite(good, folder / "nomanifest.tar", drop={"manifest.json"}),
                             "no manifest"),
        "manifest not json": (_rewrite(good, folder / "badjson.tar", manifest_raw=b"{not json"),
                              "not valid JSON"),
        "malformed manifest": (_rewrite(good, folder / "malformed.tar",
                                        manifest_edit=corrupt_manifest), "malformed"),
        "manifest without database": (_rewrite(good, folder / "nodb.tar", manifest_edit=lambda m:
                                               m.pop("database")), "malformed"),
        "missing member": (_rewrite(good, folder / "nomember.tar", drop={proof},
                                    manifest_edit=None), "missing from the archive"),
        "unlisted member": (_rewrite(good, folder / "extra.tar", keep_manifest_hashes=True,
                                     add=[(_regular("uploads/proofs/extra.png", b"x"), b"x")]),
                            "not in its manifest"),
        "path traversal": (_rewrite(good, folder / "traversal.tar",
                                    add=[(_regular("../../etc/x", b"owned"), b"owned")]),
                           "unsafe path"),
        "traversal inside uploads": (_rewrite(good, folder / "traversal2.tar", add=[
            (_regular("uploads/../../x", b"owned"), b"owned")]), "unsafe path"),
        "absolute path": (_rewrite(good, folder / "absolute.tar",
                                   add=[(_regular("/tmp/shopdesk-owned", b"owned"), b"owned")]),
                          "unsafe path"),
        "symlink member": (_rewrite(good, folder / "symlink.tar",
                                    add=[(_link("uploads/proofs/passwd", "/etc/passwd"), None)]),
                           "not a plain file"),
        "hard link member": (_rewrite(good, folder / "hardlink.tar", add=[
            (_link("uploads/proofs/h", "database/shopdesk.sqlite3.gz", tarfile.LNKTYPE), None)]),
            "not a plain file"),
        "foreign member": (_rewrite(good, folder / "foreign.tar",
                                    add=[(_regular("config/evil.py", b"x"), b"x")]),
                           "never holds"),
    }


def test_damaged_and_hostile_archives_are_refused_and_change_nothing(
        app, good_archive, migrated_db, tmp_path):
    cases = _hostile(good_archive, tmp_path / "hostile")

    other = fresh_app(migrated_db, tmp_path / "target")
    with other.app_context():
        rows_before = all_rows()
        instance = tmp_path / "target"
        listing_before = sorted(p.relative_to(instance).as_posix() for p in instance.rglob("*")
                                if "shopdesk.db" not in p.name)
        runner = other.test_cli_runner()
        for label, (archive, message) in cases.items():
            with pytest.raises(BackupError) as refused:
                restore_backup(archive, force=True)
            if message:
                assert re.search(message, str(refused.value)), (label, str(refused.value))
            out = runner.invoke(args=["restore", str(archive), "--force"])
            assert out.exit_code != 0 and "Error" in out.output, label
            # nothing changed: same rows, no files written, nothing outside the instance
            assert all_rows() == rows_before, label
            listing = sorted(p.relative_to(instance).as_posix() for p in instance.rglob("*")
                             if "shopdesk.db" not in p.name)
            assert listing == listing_before, (label, listing)
            assert not list(Path(other.config["UPLOAD_FOLDER"]).rglob("*.png")), label
        assert not (tmp_path / "etc").exists() and not Path("/tmp/shopdesk-owned").exists()
        assert not (tmp_path / "x").exists()
        # the good archive still restores: the refusals were about the archives
        assert restore_backup(good_archive).counts["orders"] == 6
        db.session.remove()
        db.engine.dispose()


# ------------------------------------------------------------------ retention


def _info(when: datetime) -> BackupInfo:
    return BackupInfo(f"shopdesk-backup-{when:%Y%m%dT%H%M%SZ}.tar", Path("/x"), when, 1, 1)


def test_retention_keeps_seven_daily_and_four_weekly():
    # given two backups a day for 60 days (Tuesday 2026-12-01 is the newest day)
    newest = datetime(2026, 12, 1, 18, 0)
    infos = [_info(newest - timedelta(hours=12 * i)) for i in range(120)]
    keep = backups_to_keep(infos)
    kept = sorted((i.created_at for i in infos if i.name in keep), reverse=True)
    # the newest of each of the last 7 days...
    days = [newest - timedelta(days=d) for d in range(7)]
    assert kept[:7] == days
    # ...and the newest of each of the last 4 ISO weeks (3 of them fall outside the 7 days)
    older = kept[7:]
    assert len(older) == 2 and all(k.weekday() == 6 and k.hour == 18 for k in older)
    assert len({k.isocalendar()[:2] for k in kept}) == 4
    assert backups_to_keep([]) == set()
    assert backups_to_keep(infos[:1]) == {infos[0].name}


def test_prune_deletes_only_archives_outside_retention(app, backups):
    backups.mkdir()
    names = []
    for day in range(40):
        when = datetime(2026, 12, 1, 3, 0) - timedelta(days=day)
        name = f"shopdesk-backup-{when:%Y%m%dT%H%M%SZ}.tar"
        (backups / name).write_bytes(b"")
        names.append(name)
    (backups / "notes.txt").write_text("mine")
    removed = prune_backups()
    left = sorted(p.name for p in backups.iterdir() if p.name.startswith("shopdesk-"))
    # 2026-12-01 is a Tuesday: its 7 days reach back into last week, so 2 more weeks
    assert len(left) == 7 + 2 and set(left) | set(removed) == set(names)
    assert {"shopdesk-backup-20261122T030000Z.tar", "shopdesk-backup-20261115T030000Z.tar"} \
        <= set(left)
    assert (backups / "notes.txt").read_text() == "mine"


def test_backup_cli_prune(app, store, backups):
    old = backups / "shopdesk-backup-20200101T000000Z.tar"
    backups.mkdir()
    old.write_bytes(b"")
    for when in ("20200102T000000Z", "20200103T000000Z", "20200104T000000Z", "20200105T000000Z",
                 "20200106T000000Z", "20200107T000000Z", "20200108T000000Z",
                 "20200109T000000Z", "20200110T000000Z", "20200111T000000Z",
                 "20200201T000000Z", "20200301T000000Z"):
        (backups / f"shopdesk-backup-{when}.tar").write_bytes(b"")
    out = app.test_cli_runner().invoke(args=["backup", "--prune"])
    assert out.exit_code == 0, out.output
    assert f"Removed {old.name}" in out.output
    # today's new archive plus the newest of 6 more days (4 weeks are among them)
    left = sorted(p.name[16:24] for p in backups.glob("shopdesk-backup-*.tar"))
    assert left == ["20200108", "20200109", "20200110", "20200111", "20200201", "20200301",
                    datetime.now(UTC).strftime("%Y%m%d")]


# ------------------------------------------------------------------ the Backups page


def test_backups_page_is_the_owners(app, store, backups, owner_client, staff_client, client):
    first = create_backup(now=datetime(2026, 11, 30, 2, 0, tzinfo=UTC))
    latest = create_backup()
    # owner: the list, newest first, with order counts and local times
    page = owner_client.get("/settings/backups")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert html.index(latest.path.name) < html.index(first.path.name)
    assert "Download the latest" in html and ">6</td>" in html
    assert "2026-11-30 10:00" in html  # 02:00 UTC in the store's Asia/Hong_Kong
    download = owner_client.get("/settings/backups/latest")
    assert download.status_code == 200
    assert download.data == latest.path.read_bytes()
    assert latest.path.name in download.headers["Content-Disposition"]
    # staff: 403 everywhere; anonymous: sign in first
    for url in ("/settings/backups", "/settings/backups/latest"):
        assert staff_client.get(url).status_code == 403
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert staff_client.post("/settings/backups").status_code == 403
    assert client.post("/settings/backups", csrf=False).status_code == 400  # CSRF first
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_back_up_now_runs_as_a_job(app, store, backups, owner_client, run_worker):
    # without the CSRF token: refused, nothing queued
    refused = owner_client.post("/settings/backups", csrf=False)
    assert refused.status_code == 400
    assert db.session.scalar(select(func.count(Job.id))) == 0
    # with it: a job, a progress component that polls, then the archive
    response = owner_client.post("/settings/backups")
    assert response.status_code == 302
    job = db.session.scalar(select(Job))
    assert job.kind == "backup" and f"job={job.id}" in response.headers["Location"]
    polling = owner_client.get(f"/settings/backups/jobs/{job.id}", htmx=True)
    assert "every 1s" in polling.get_data(as_text=True)
    assert run_worker()
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    assert job.status == "done", job.error
    done = owner_client.get(f"/settings/backups/jobs/{job.id}", htmx=True)
    assert done.headers.get("HX-Refresh") == "true" and "every 1s" not in done.get_data(
        as_text=True)
    archives = list(backups.glob("shopdesk-backup-*.tar"))
    assert len(archives) == 1 and job.result_name == archives[0].name
    assert archives[0].name in owner_client.get("/settings/backups").get_data(as_text=True)


def test_download_latest_without_backups_says_so(app, backups, owner_client):
    response = owner_client.get("/settings/backups/latest")
    assert response.status_code == 302
    page = owner_client.get("/settings/backups").get_data(as_text=True)
    assert "There is no backup to download yet." in page and "No backups yet" in page


# ------------------------------------------------------------------ PostgreSQL

PG_ADMIN = os.environ.get("SHOPDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def pg_databases():
    """Two fresh databases for this module: the source and the restore target."""
    import uuid

    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"No PostgreSQL at {PG_ADMIN}: {exc}")
    names = [f"shopdesk_backup_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield [f"{base}/{name}" for name in names]
    finally:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _pg_app(url: str, folder: Path, migrate: bool = True):
    from flask_migrate import upgrade

    from domain.store import ensure_store_defaults

    folder.mkdir(exist_ok=True)
    # 20 buyer threads and the backup each hold a connection at times: room for all.
    app = create_app({"TESTING": True, "SECRET_KEY": "pg", "SQLALCHEMY_DATABASE_URI": url,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": THREADS + 5},
                      "UPLOAD_FOLDER": str(folder / "uploads"),
                      "BACKUP_FOLDER": str(folder / "backups")})
    if migrate:
        with app.app_context():
            upgrade()
            ensure_store_defaults()
            fill_payment_details()
            db.session.remove()
            db.engine.dispose()
    return app


@pytest.mark.slow
def test_postgres_backup_under_load_and_identical_restore(pg_databases, tmp_path):
    source = _pg_app(pg_databases[0], tmp_path / "source")
    target = _pg_app(pg_databases[1], tmp_path / "target")
    with source.app_context():
        set_store_logo(BytesIO(png_bytes("purple")))
        variants = make_stock()
        # a backup while 20 threads place orders
        result, before, after = place_under_load(source, list(variants), create_backup)
        assert result.manifest["dialect"] == "postgresql"
        assert result.manifest["database"]["server_major"] == 15
        assert before <= result.manifest["tables"]["orders"] <= after
        assert result.manifest["missing_files"] == []
        quiet = create_backup()  # and one of the quiet store, to compare row by row
        source_rows = all_rows()
        source_files = upload_hashes(tmp_path / "source" / "uploads")
        db.session.remove()
        db.engine.dispose()
    with target.app_context():
        report = restore_backup(result.path)
        assert report.counts == result.manifest["tables"]
        assert_consistent(result.manifest, variants, tmp_path / "target" / "uploads")
        with pytest.raises(BackupError, match="already holds data"):
            restore_backup(quiet.path)
        report = restore_backup(quiet.path, force=True)
        assert all_rows() == source_rows
        assert upload_hashes(tmp_path / "target" / "uploads") == source_files
        # a damaged dump is refused before the database is touched
        damaged = _flip_byte_in(quiet.path, "database/shopdesk.pgdump", tmp_path / "bad.tar")
        with pytest.raises(BackupError, match="checksum"):
            restore_backup(damaged, force=True)
        assert all_rows() == source_rows
        db.session.remove()
        db.engine.dispose()


def test_postgres_dump_that_fails_to_restore_changes_nothing(pg_databases, tmp_path):
    """A dump that passes the checksums but breaks half way in pg_restore is rolled back."""
    from domain import backup_db

    target = _pg_app(pg_databases[1], tmp_path / "t2", migrate=False)
    with target.app_context():
        db.session.execute(text("CREATE TABLE IF NOT EXISTS canary (x int)"))
        db.session.execute(text("INSERT INTO canary VALUES (42)"))
        db.session.commit()
        rows = all_rows()
        bogus = tmp_path / "bogus.pgdump"
        bogus.write_bytes(b"PGDMP" + os.urandom(4096))
        with pytest.raises(BackupError, match="was not changed"):
            backup_db.postgres_write_into_place(bogus, db.engine.url)
        assert all_rows() == rows and (42,) in rows["canary"]  # the DROP SCHEMA rolled back
        db.session.execute(text("DROP TABLE canary"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def test_restore_refuses_an_archive_of_the_other_database(app, good_archive, pg_databases,
                                                          tmp_path):
    target = _pg_app(pg_databases[1], tmp_path / "t3", migrate=False)
    with target.app_context():
        with pytest.raises(BackupError, match="sqlite database; this instance uses postgresql"):
            restore_backup(good_archive, force=True)
        db.session.remove()
        db.engine.dispose()
