"""Demo orders that wait for confirmation carry a real generated receipt (issue 7):
stored like an upload, opening as an image, showing that order's own amount, and
shown in the review queue without a broken image."""

from __future__ import annotations

import re
from datetime import datetime
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat
from sqlalchemy import select

from domain import proofs
from domain.db import db
from domain.demo import seed_demo
from domain.demo_receipts import AMOUNT_BOX, SIZE, Receipt, font_files, render
from domain.models import Customer, Order, OrderEvent, OrderLine
from domain.money import format_money

NOW = datetime(2026, 11, 30, 4, 0)


def waiting_orders() -> list[Order]:
    db.session.rollback()
    return list(db.session.scalars(select(Order).where(
        Order.kind == "placed", Order.status == "pending_confirmation").order_by(Order.id)))


def stored_files(app) -> list[Path]:
    root = Path(app.config["UPLOAD_FOLDER"]) / "proofs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def amount_band(image: Image.Image) -> Image.Image:
    return image.convert("L").crop(AMOUNT_BOX)


def band_difference(a: Image.Image, b: Image.Image) -> float:
    """Share of the amount band's pixels that clearly differ (JPEG noise stays below 96)."""
    diff = ImageChops.difference(amount_band(a), amount_band(b)).point(lambda v: 255 * (v > 96))
    return ImageStat.Stat(diff).mean[0] / 255


@pytest.fixture
def seeded(app):
    seed_demo(600, seed=7, now=NOW)
    orders = waiting_orders()
    assert len(orders) >= 3, "the demo should have orders waiting for confirmation"
    return orders


def test_every_waiting_order_has_a_receipt_stored_like_an_upload(app, seeded):
    hashes = set()
    for order in seeded:
        path = proofs.resolve(order.proof_path)
        assert path is not None, f"{order.number}: no proof file at {order.proof_path!r}"
        assert re.fullmatch(r"proofs/[0-9a-f]{2}/[0-9a-f]{32}\.jpg", order.proof_path)
        data = path.read_bytes()
        with Image.open(BytesIO(data)) as image:
            image.verify()
        with Image.open(path) as image:
            assert (image.format, image.size) == ("JPEG", SIZE)
        # the same hash the upload pipeline gives this file, so reuse checks work on it
        assert proofs.clean_upload(data).sha256 == order.proof_sha256
        thumb = proofs.resolve(proofs.thumbnail_path(order.proof_path))
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= max(proofs.THUMB_SIZE)
        # uploaded when the history says, and its download is served as an image
        uploaded = db.session.scalar(select(OrderEvent.created_at).where(
            OrderEvent.order_id == order.id, OrderEvent.type == "proof_uploaded"))
        assert order.proof_uploaded_at == uploaded
        assert proofs.proof_download(order)[1] == "image/jpeg"
        hashes.add(order.proof_sha256)
    assert len(hashes) == len(seeded), "each order has its own receipt"
    # no other order has a proof, and no file lies around unused
    assert db.session.scalar(select(Order.id).where(
        Order.proof_path.is_not(None), Order.status != "pending_confirmation")) is None
    assert len(stored_files(app)) == 2 * len(seeded)


def test_each_receipt_shows_its_own_orders_amount(app, seeded):
    # Only the amount is drawn in AMOUNT_BOX, so the stored image's band matches a
    # receipt drawn with this order's total and not one drawn with another total.
    for order in seeded:
        with Image.open(proofs.resolve(order.proof_path)) as stored:
            stored.load()

        def drawn(cents, number=order.number):
            return render(Receipt("fps", "FPS", "x", "y", format_money(cents), NOW, number, "t"))

        own = band_difference(stored, drawn(order.total_cents))
        # one digit off (a cent, or a hundred dollars) is already hundreds of pixels
        for wrong in (order.total_cents + 1, order.total_cents + 100_00):
            other = band_difference(stored, drawn(wrong))
            assert own < 0.0005 and other > 0.002, (order.number, wrong, own, other)


def test_receipt_text_is_bilingual_when_a_chinese_font_exists():
    _regular, _bold, cjk = font_files()
    if not cjk:
        pytest.skip("no Chinese font on this machine: receipts are English only")
    fps = render(Receipt("fps", "FPS", "店", "陳大文", "HK$ 1.00", NOW, "SD1", "a"))
    latin = render(Receipt("fps", "FPS", "店", "Chan Tai Man", "HK$ 1.00", NOW, "SD1", "a"))
    # the payer's Chinese name is drawn (not dropped or left as empty boxes)
    assert ImageChops.difference(fps, latin).getbbox() is not None


def test_receipts_are_the_same_for_the_same_seed(app):
    def hashes():
        return {o.number: o.proof_sha256 for o in waiting_orders()}

    seed_demo(300, seed=11, now=NOW)
    first = hashes()
    assert first and all(first.values())
    for model in (OrderEvent, OrderLine, Order, Customer):
        db.session.execute(model.__table__.delete())
    db.session.commit()
    seed_demo(300, seed=11, now=NOW)
    assert hashes() == first


def test_a_failed_seed_leaves_no_proof_files(app, monkeypatch):
    import domain.demo

    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setattr(domain.demo, "sync_id_sequences", broken)
    with pytest.raises(RuntimeError):
        seed_demo(600, seed=7, now=NOW)
    db.session.rollback()
    assert db.session.scalar(select(Order.id)) is None
    assert stored_files(app) == []


def test_review_queue_images_load_for_staff(app, seeded, staff_client, client):
    html = staff_client.get("/review/").get_data(as_text=True)
    for order in seeded:
        assert order.number in html
    # Each card shows its proof full size (inline, and again in its zoom dialog).
    sources = sorted(set(re.findall(r'<img src="([^"]+)"', html)))
    assert sources == sorted(f"/review/proofs/{o.number}" for o in seeded)
    for url in sources:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype == "image/jpeg"
        with Image.open(BytesIO(response.data)) as image:
            image.verify()
    # and nobody signed out gets them
    assert client.get(sources[0]).status_code == 302


def test_demo_orders_store_the_e164_phone_like_placed_orders(app, tmp_path):
    from domain.phones import store_e164

    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    seed_demo(orders=60, seed=3)
    rows = db.session.execute(select(Order.customer_phone, Order.customer_phone_e164)).all()
    assert rows and all(e164 and e164 == store_e164(phone) for phone, e164 in rows)


def test_demo_carrier_orders_have_a_shipment_and_print_a_label(app, tmp_path):
    from domain.documents import label_refusal, render_pdf
    from domain.models import Shipment

    app.config["UPLOAD_FOLDER"] = str(tmp_path / "uploads")
    seed_demo(orders=300, seed=5)
    carrier = list(db.session.scalars(select(Order).where(Order.tracking_code_by_carrier.is_(True))))
    assert carrier, "the demo has carrier-booked parcels"
    booked = {s.order_id: s for s in db.session.scalars(select(Shipment))}
    assert {o.id for o in carrier} == set(booked)
    assert all(booked[o.id].tracking_code == o.tracking_code for o in carrier)
    assert label_refusal(carrier[0]) is None
    assert render_pdf("label", [carrier[0].id]).startswith(b"%PDF")
