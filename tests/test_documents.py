"""Papers (issue 11): each kind renders from the order's stored values, in the order's
language, with the Chinese text embedded as real glyphs."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from test_documents_fixtures import *  # noqa: F403 (fixtures)
from test_documents_fixtures import (
    ZH_ADDRESS,
    ZH_NAME,
    ZH_PRODUCT,
    ZH_VARIANT,
    fonts_of,
    keep,
    page_sizes_mm,
    pdf_text,
    squash,
)

from domain.db import db
from domain.documents import KINDS, label_refusal, render_pdf
from domain.documents.codes import code128_value, qr_value
from domain.documents.figures import payment_state
from domain.models import Shipment


def has(text: str, *expected: str) -> None:
    flat = squash(text)
    for item in expected:
        assert squash(item) in flat, item


def lacks(text: str, *unexpected: str) -> None:
    flat = squash(text)
    for item in unexpected:
        assert squash(item) not in flat, item


def only_embedded_noto(pdf: bytes) -> None:
    """Every font drawn with is the embedded Noto Sans HK subset (no box-drawing
    fallback to an unembedded Helvetica for the Chinese)."""
    fonts = fonts_of(pdf)
    noto = {name: info for name, info in fonts.items() if "NotoSansHK" in name}
    assert noto, fonts
    assert all(info["embedded"] and info["subtype"] == "/TrueType" for info in noto.values())
    # A subset: the 7 MB face is not embedded whole.
    assert len(pdf) < 400_000


# ------------------------------------------------------------------ invoice


def test_invoice_in_chinese_extracts_back(zh_order):
    pdf = render_pdf("invoice", [zh_order.id])
    keep("invoice-zh", pdf)
    text = pdf_text(pdf)
    has(text, ZH_NAME, ZH_ADDRESS, ZH_PRODUCT, ZH_VARIANT, "發票", zh_order.number,
        "小店 Little Shop", "香港中環皇后大道中 99 號", "2345 6789", "hello@little.shop",
        "待付款", "轉數快", "包裝費", "多謝惠顧！7 日內可退換。", "T-0001", "旺角")
    only_embedded_noto(pdf)
    assert page_sizes_mm(pdf) == [(210.0, 297.0)]


def test_invoice_prints_the_stored_money(zh_order):
    # given: stored totals that differ from what the lines would add up to (a modified
    # order keeps its own figures): the paper prints the stored ones
    zh_order.subtotal_cents, zh_order.total_cents = 32100, 34600
    zh_order.paid_cents = 0
    db.session.commit()
    text = pdf_text(render_pdf("invoice", [zh_order.id]))
    has(text, "HK$128.00", "HK$256.00", "HK$65.00", "HK$321.00", "-HK$10.00", "HK$30.00",
        "HK$5.00", "HK$346.00", "應付金額")
    lacks(text, "已付款")


def test_invoice_says_paid_once_paid_covers_the_total(en_order):
    en_order.paid_cents = en_order.total_cents
    db.session.commit()
    text = pdf_text(render_pdf("invoice", [en_order.id]))
    keep("invoice-en", render_pdf("invoice", [en_order.id]))
    has(text, "Invoice", "Paid", "Alice Wong", "Flat 3A, 12 Nathan Road", "Butter cookies",
        "Large tin", "HK$297.00", "Subtotal", "Shipping fee", "Total")
    lacks(text, "Amount due", "Discount", "發票")


def test_payment_state_rule(en_order):
    en_order.total_cents, en_order.paid_cents = 10000, 9999
    assert payment_state(en_order).due_cents == 1 and not payment_state(en_order).paid
    en_order.paid_cents = 10000
    assert payment_state(en_order).paid and payment_state(en_order).due_cents == 0
    en_order.paid_cents = 15000  # a credit is not a negative amount due
    assert payment_state(en_order).paid and payment_state(en_order).due_cents == 0


def test_locale_overrides_the_orders_language(zh_order):
    text = pdf_text(render_pdf("invoice", [zh_order.id], locale="en"))
    has(text, "Invoice", "Subtotal", ZH_NAME)
    lacks(text, "發票", "小計")


def test_order_without_language_uses_the_stores(zh_order, store_info):
    zh_order.locale = None
    store_info.language = "en"
    db.session.commit()
    has(pdf_text(render_pdf("invoice", [zh_order.id])), "Invoice")


def test_store_logo_is_embedded(zh_order, app):
    from PIL import Image

    from domain.store import set_store_logo

    png = io.BytesIO()
    Image.new("RGB", (200, 80), (200, 30, 30)).save(png, format="PNG")
    png.seek(0)
    set_store_logo(png)
    pdf = render_pdf("invoice", [zh_order.id])
    keep("invoice-zh-logo", pdf)
    images = [img for page in PdfReader(io.BytesIO(pdf)).pages for img in page.images]
    assert len(images) == 1


# ------------------------------------------------------------------ packing list


def test_packing_list_has_no_prices(zh_order):
    pdf = render_pdf("packing_list", [zh_order.id])
    keep("packing-list-zh", pdf)
    text = pdf_text(pdf)
    has(text, "裝箱單", ZH_NAME, ZH_ADDRESS, ZH_PRODUCT, ZH_VARIANT, "T-0001", "共 3 件")
    lacks(text, "HK$", "小計", "總計")
    only_embedded_noto(pdf)


def test_packing_list_in_english(en_order):
    pdf = render_pdf("packing_list", [en_order.id])
    keep("packing-list-en", pdf)
    has(pdf_text(pdf), "Packing list", "Alice Wong", "Butter cookies", "3 items in all")


# ------------------------------------------------------------------ label


def test_label_is_one_100_by_150_page(logistics_order):
    pdf = render_pdf("label", [logistics_order.id])
    keep("label-zh", pdf)
    assert page_sizes_mm(pdf) == [(100.0, 150.0)]
    text = pdf_text(pdf)
    has(text, "寄件人", "收件人", ZH_NAME, ZH_ADDRESS, "9123 4567", "TC123456785HK",
        logistics_order.number, "小店 Little Shop", "T07", "測試標籤")
    only_embedded_noto(pdf)


def test_label_in_english_for_an_english_order(logistics_order):
    logistics_order.locale = "en"
    db.session.commit()
    pdf = render_pdf("label", [logistics_order.id])
    keep("label-en", pdf)
    has(pdf_text(pdf), "Sender", "Recipient", "Tracking code", "TEST LABEL")


def test_long_address_label_stays_on_one_page(logistics_order):
    shipment = db.session.query(Shipment).filter_by(order_id=logistics_order.id).one()
    shipment.label = {**shipment.label, "address": "新界沙田火炭坳背灣街 " * 12,
                      "recipient": "歐陽" * 20}
    db.session.commit()
    pdf = render_pdf("label", [logistics_order.id])
    keep("label-long", pdf)
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1


def test_label_refusal(zh_order, logistics_order, make_order):
    assert label_refusal(logistics_order) is None
    assert label_refusal(zh_order) == "Only logistics-automation orders have a shipping label."
    unbooked = make_order(shipping="logistics")
    assert label_refusal(unbooked) == "No shipment has been created with the carrier yet."
    # A booking under way (a claim without a code) has no label yet either.
    db.session.add(Shipment(order_id=unbooked.id, carrier="test", tracking_code=""))
    db.session.commit()
    assert label_refusal(unbooked) == "No shipment has been created with the carrier yet."


def test_labels_skip_orders_without_one(zh_order, logistics_order):
    pdf = render_pdf("label", [zh_order.id, logistics_order.id])
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
    with pytest.raises(LookupError):
        render_pdf("label", [zh_order.id])


# ------------------------------------------------------------------ many orders


def test_many_orders_one_pdf_in_the_given_order_each_in_its_language(zh_order, en_order):
    pdf = render_pdf("invoice", [en_order.id, zh_order.id, en_order.id, 999999])
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2  # the repeat and the unknown id are left out
    first, second = (page.extract_text() for page in reader.pages)
    has(first, "Invoice", en_order.number)
    has(second, "發票", zh_order.number)


def test_unknown_kind_and_no_orders(app):
    with pytest.raises(ValueError):
        render_pdf("receipt", [1])
    with pytest.raises(LookupError):
        render_pdf("invoice", [424242])
    assert KINDS == ("invoice", "packing_list", "label", "pick_list")


# ------------------------------------------------------------------ pick list


def test_pick_list_sums_and_sorts_by_sku(make_order, make_variant, store_info):
    a = make_variant(name=ZH_PRODUCT, variant=ZH_VARIANT)  # T-0001
    b = make_variant(name="Earl Grey tea", variant="50 g tin")  # T-0002
    c = make_variant(name="Oolong", variant="")  # T-0003
    first = make_order(items=[(c.id, 1), (a.id, 2)])
    second = make_order(items=[(a.id, 3), (b.id, 1)])
    third = make_order(items=[(c.id, 4)])
    pdf = render_pdf("pick_list", [first.id, second.id, third.id], locale="zh_Hant_HK")
    keep("pick-list-zh", pdf)
    text = pdf_text(pdf)
    has(text, "揀貨單", "3 張訂單", "11 件")
    flat = squash(text)
    # Sorted by SKU, each with its total and the orders under it.
    at = [flat.index(sku) for sku in ("T-0001", "T-0002", "T-0003")]
    assert at == sorted(at)
    has(text, f"T-0001{ZH_PRODUCT}—{ZH_VARIANT}5", f"{first.number}×2·{second.number}×3",
        "T-0003Oolong5", f"{first.number}×1·{third.number}×4")
    only_embedded_noto(pdf)
    keep("pick-list-en", render_pdf("pick_list", [first.id, second.id, third.id], locale="en"))


def test_pick_rows_merge_lines_of_one_variant(make_order, make_variant):
    from domain.documents.picklist import pick_rows

    v = make_variant()
    order = make_order(items=[(v.id, 1)])
    other = make_order(items=[(v.id, 2)])
    rows = pick_rows([order, other, order])
    assert [(r.sku, r.quantity) for r in rows] == [(v.sku, 4)]
    assert rows[0].orders == [(order.number, 1), (other.number, 2), (order.number, 1)]


# ------------------------------------------------------------------ codes


def test_barcode_values():
    assert code128_value(" SD1001 ") == "SD1001"
    assert code128_value("陳") is None and code128_value("") is None
    assert code128_value("x" * 49) is None
    assert qr_value("TC123456785HK") == "TC123456785HK"
    assert qr_value("a\x00b") is None


def test_every_kind_renders_for_an_english_store(en_order, logistics_order):
    for kind in KINDS:
        ids = [logistics_order.id] if kind == "label" else [en_order.id]
        pdf = render_pdf(kind, ids, locale="en")
        assert pdf.startswith(b"%PDF-")
        keep(f"{kind}-en-store", pdf)


def test_missing_shipment_label_fields_fall_back_to_the_order(logistics_order):
    shipment = db.session.query(Shipment).filter_by(order_id=logistics_order.id).one()
    shipment.label = {}
    db.session.commit()
    has(pdf_text(render_pdf("label", [logistics_order.id])), ZH_NAME, ZH_ADDRESS,
        "小店 Little Shop", "TC123456785HK")


def test_record_printed_writes_one_event_per_order(zh_order, en_order):
    from domain.actors import SYSTEM
    from domain.documents import PRINTED_EVENT, record_printed
    from domain.models import OrderEvent

    written = record_printed("invoice", [zh_order.id, en_order.id, zh_order.id, 999999],
                             actor=SYSTEM)
    assert written == 2
    events = db.session.query(OrderEvent).filter_by(type=PRINTED_EVENT).all()
    assert sorted(e.order_id for e in events) == sorted([zh_order.id, en_order.id])
    assert all(e.details == {"kind": "invoice"} for e in events)
    with pytest.raises(ValueError):
        record_printed("receipt", [zh_order.id], actor=SYSTEM)


def test_many_labels_one_per_page(make_order, store_info):
    from test_documents_fixtures import book

    orders = [make_order(shipping="logistics", name=f"客戶{i}") for i in range(3)]
    for i, order in enumerate(orders):
        book(order, code=f"TC0000000{i}0HK")
    pdf = render_pdf("label", [o.id for o in orders])
    assert page_sizes_mm(pdf) == [(100.0, 150.0)] * 3
    reader = PdfReader(io.BytesIO(pdf))
    for i, page in enumerate(reader.pages):
        has(page.extract_text(), f"客戶{i}", f"TC0000000{i}0HK")


def test_chunks_are_joined_in_order(zh_order, en_order, monkeypatch):
    from domain.documents import render

    monkeypatch.setattr(render, "CHUNK", 1)
    pdf = render_pdf("packing_list", [zh_order.id, en_order.id])
    pages = PdfReader(io.BytesIO(pdf)).pages
    assert len(pages) == 2
    has(pages[0].extract_text(), "裝箱單", zh_order.number)
    has(pages[1].extract_text(), "Packing list", en_order.number)


def test_a_tracking_code_code128_cannot_carry_is_printed_as_text(logistics_order):
    shipment = db.session.query(Shipment).filter_by(order_id=logistics_order.id).one()
    shipment.tracking_code = "順豐ＳＦ１２３"
    db.session.commit()
    has(pdf_text(render_pdf("label", [logistics_order.id])), "順豐ＳＦ１２３")


def test_pdf_title_names_the_paper_and_the_order(zh_order, en_order):
    title = PdfReader(io.BytesIO(render_pdf("invoice", [zh_order.id]))).metadata.title
    assert title == f"發票 {zh_order.number}"
    both = render_pdf("packing_list", [zh_order.id, en_order.id], locale="en")
    assert PdfReader(io.BytesIO(both)).metadata.title == "Packing list"
