"""Fixtures and helpers shared by the papers' tests (no tests of its own; test modules
``from test_documents_fixtures import *``): a Chinese order with discount and extra
charge, an English one, and a logistics order with a booked carrier shipment.

Set PAPERS_SHOTS=/some/dir to keep every PDF a test renders there (to look at them
with pdftoppm; the tests themselves never need poppler)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from domain.db import db
from domain.models import Order, Shipment, StoreSettings

__all__ = ["ZH_ADDRESS", "ZH_NAME", "ZH_PRODUCT", "ZH_VARIANT", "book", "en_order", "fonts_of",
           "keep", "logistics_order", "page_sizes_mm", "pdf_text", "squash", "store_info",
           "zh_order"]

ZH_NAME = "陳大文"
ZH_ADDRESS = "九龍旺角彌敦道 688 號旺角中心 12 樓 B 室"
ZH_PRODUCT = "手工曲奇禮盒"
ZH_VARIANT = "抹茶味"


def keep(name: str, pdf: bytes) -> None:
    folder = os.environ.get("PAPERS_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.pdf").write_bytes(pdf)


def pdf_text(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def squash(text: str) -> str:
    """Text without whitespace: a PDF's extraction puts breaks where lines wrapped."""
    return re.sub(r"\s+", "", text)


def fonts_of(pdf: bytes) -> dict[str, dict]:
    """BaseFont -> {"embedded": bool, "subtype": ...} for every font on every page."""
    reader = PdfReader(io.BytesIO(pdf))
    found: dict[str, dict] = {}
    for page in reader.pages:
        resources = page.get("/Resources") or {}
        for ref in (resources.get("/Font") or {}).values():
            font = ref.get_object()
            descriptor = font.get("/FontDescriptor")
            descriptor = descriptor.get_object() if descriptor is not None else {}
            found[str(font.get("/BaseFont"))] = {
                "subtype": str(font.get("/Subtype")),
                "embedded": "/FontFile2" in descriptor,
            }
    return found


def page_sizes_mm(pdf: bytes) -> list[tuple[float, float]]:
    reader = PdfReader(io.BytesIO(pdf))
    return [(round(float(p.mediabox.width) / 72 * 25.4, 1),
             round(float(p.mediabox.height) / 72 * 25.4, 1)) for p in reader.pages]


@pytest.fixture
def store_info(app):
    settings = db.session.get(StoreSettings, 1)
    settings.name = "小店 Little Shop"
    settings.address = "香港中環皇后大道中 99 號\n中環中心 8 樓"
    settings.phone = "2345 6789"
    settings.email = "hello@little.shop"
    settings.invoice_note = "多謝惠顧！7 日內可退換。\nThank you — returns within 7 days."
    db.session.commit()
    return settings


@pytest.fixture
def zh_order(make_order, make_variant, store_info):
    first = make_variant(name=ZH_PRODUCT, variant=ZH_VARIANT, price_cents=12800)
    second = make_variant(name="Earl Grey tea", variant="50 g tin", price_cents=6500)
    order = make_order(items=[(first.id, 2), (second.id, 1)], name=ZH_NAME,
                       address=ZH_ADDRESS, discount_cents=1000, extra_charge_cents=500,
                       locale="zh_Hant_HK")
    order.extra_charge_label = "包裝費"
    db.session.commit()
    return order


@pytest.fixture
def en_order(make_order, make_variant, store_info):
    variant = make_variant(name="Butter cookies", variant="Large tin", price_cents=9900)
    return make_order(items=[(variant.id, 3)], name="Alice Wong",
                      address="Flat 3A, 12 Nathan Road\nTsim Sha Tsui, Kowloon", locale="en")


def book(order: Order, code: str = "TC123456785HK", **label) -> Shipment:
    """A carrier shipment as domain.shipments stores it (the test carrier's label)."""
    shipment = Shipment(order_id=order.id, carrier="test", tracking_code=code, weight_grams=1200,
                        label={"carrier": "test", "service": "Test Standard",
                               "tracking_code": code, "recipient": order.customer_name,
                               "phone": order.customer_phone, "address": order.shipping_address,
                               "weight_grams": 1200, "reference": order.number, "test": True,
                               "sender": "小店 Little Shop", "sender_phone": "2345 6789",
                               "sender_address": "香港中環皇后大道中 99 號", "route": "T07",
                               **label})
    db.session.add(shipment)
    order.tracking_code = code
    order.tracking_code_by_carrier = True
    db.session.commit()
    return shipment


@pytest.fixture
def logistics_order(make_order, make_variant, store_info):
    variant = make_variant(name=ZH_PRODUCT, variant=ZH_VARIANT, price_cents=12800)
    order = make_order(items=[(variant.id, 1)], name=ZH_NAME, address=ZH_ADDRESS,
                       shipping="logistics", payment="credit_card", locale="zh_Hant_HK")
    book(order)
    return order
