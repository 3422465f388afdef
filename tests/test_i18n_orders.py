"""The order desk in two languages (issue 8): the orders list and the order page read in
Traditional Chinese for a staff member who chose it (whole pages and htmx fragments),
refusals flash in their language, counts take their plural form in English, and the
Excel export speaks the exporting staff member's language, directly and from a job."""

from __future__ import annotations

import io
import re
from urllib.parse import urlparse

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from domain import exports
from domain.actors import Actor
from domain.db import db
from domain.models import Order, User
from domain.orders import confirm_payment, reject_order, ship_order, upload_proof
from domain.status import OrderStatus
from tests.test_pages_in_chinese import ALLOWED, _data_values, _default_words, english_left

pytest_plugins = ["jobs_fixtures"]

ZH = "zh_Hant_HK"
ZH_STATUS = {"pending_payment": "待付款", "pending_confirmation": "付款待確認",
             "processing": "處理中", "completed": "已完成", "canceled": "已取消"}


def _speak(user, locale: str | None) -> None:
    """The staff member's own language, set in the database (as the profile form does)."""
    db.session.execute(update(User).where(User.id == user.id).values(locale=locale))
    db.session.commit()


def _no_english(html: str, where: str) -> None:
    allowed = ALLOWED | (_data_values() - _default_words())
    left = english_left(html, allowed)
    assert not left, f"English on {where}: {sorted(set(left))[:20]}"


@pytest.fixture
def desk(app, owner, make_order):
    """One order in every status, the owner reading Chinese."""
    staff = Actor.staff(owner)
    pending = make_order(name="陳大文")
    proof = make_order(name="何太")
    upload_proof(proof.id, path="proofs/test.png", sha256="ab" * 32)
    processing = make_order(name="李小龍")
    confirm_payment(processing.id, actor=staff)
    completed = make_order(name="黃家駒")
    confirm_payment(completed.id, actor=staff)
    ship_order(completed.id, actor=staff, tracking_code="SF1234567890")
    canceled = make_order(name="張學友")
    reject_order(canceled.id, "客人取消", actor=staff)
    _speak(owner, ZH)
    return {o.status: o for o in (db.session.get(Order, x.id) for x in
                                   (pending, proof, processing, completed, canceled))}


# ------------------------------------------------------------------ the list


@pytest.mark.parametrize("htmx", [False, True])
def test_orders_list_reads_in_chinese(owner_client, desk, htmx):
    html = owner_client.get("/orders", htmx=htmx).get_data(as_text=True)
    # status tabs with their counts, and one badge per order
    for status, label in ZH_STATUS.items():
        assert re.search(rf'data-status="{status}"[^>]*>{label} <span class="count">1</span>', html), status
        assert re.search(rf'class="badge badge-\w+" data-status="{status}">{label}</span>', html), status
    assert '>全部 <span class="count">5</span>' in html
    assert "5 張訂單" in html and "全部匯出（5 張）" in html and "匯出所選訂單" in html
    # the texts app.js shows as the selection changes come translated from the page
    assert 'data-text-all="已選取全部 5 張符合的訂單"' in html
    assert 'data-text-ticked-one="已選 {n} 張"' in html
    # the phone layout picks cells by position (no English labels in the markup); what
    # it shows before the tracking code is the Chinese caption
    assert html.count('<td id="status-') == 5 and 'data-label' not in html
    assert html.count('data-caption="追蹤編號："') == 5
    if not htmx:
        assert "<h1>訂單</h1>" in html and 'placeholder="搜尋姓名、電話、電郵、產品、條碼或訂單編號"' in html
    _no_english(html, "/orders" + (" (htmx)" if htmx else ""))


def test_a_bad_list_argument_is_explained_in_chinese(owner_client, desk):
    html = owner_client.get("/orders?status=nope&from=yesterday").get_data(as_text=True)
    assert "不明的狀態分頁，現顯示全部。" in html
    assert "開始日期必須是日期，例如 2026-01-31。" in html
    _no_english(html, "/orders?status=nope")


def test_counts_take_their_plural_form_in_english(owner_client, owner, make_order):
    _speak(owner, "en")
    make_order()
    one = owner_client.get("/orders").get_data(as_text=True)
    assert '<span class="bulk-count" id="bulk-count" aria-live="polite">1 order</span>' in one
    assert "1 order · page 1 of 1" in one and 'data-text-all="All 1 matching order selected"' in one
    make_order(), make_order()
    three = owner_client.get("/orders", htmx=True).get_data(as_text=True)
    assert '<span class="bulk-count" id="bulk-count" aria-live="polite">3 orders</span>' in three
    assert "3 orders · page 1 of 1" in three and "Export all 3" in three
    assert 'data-text-match="Select all 3 orders matching"' in three


# ------------------------------------------------------------------ the order page


@pytest.mark.parametrize("htmx", [False, True])
def test_order_page_awaiting_confirmation_reads_in_chinese(owner_client, desk, htmx):
    order = desk["pending_confirmation"]
    html = owner_client.get(f"/orders/{order.number}", htmx=htmx).get_data(as_text=True)
    assert f"訂單 {order.number}" in html
    assert 'data-status="pending_confirmation">付款待確認</span>' in html
    for text in ("確認付款", "退回付款證明", "拒絕訂單…", f"拒絕訂單 {order.number}？",
                 "保留訂單", "下一步", "紀錄", "已落單", "已上載付款證明", "付款證明",
                 "應顯示 <strong>HK$158.00</strong>", "小計", "總計", "新增備註"):
        assert text in html, text
    _no_english(html, f"/orders/{order.number}" + (" (htmx)" if htmx else ""))


@pytest.mark.parametrize("status", list(ZH_STATUS))
def test_order_page_in_every_status_reads_in_chinese(owner_client, desk, status):
    order = desk[status]
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert f'data-status="{status}">{ZH_STATUS[status]}</span>' in html
    _no_english(html, f"/orders/{order.number}")
    if status == "completed":
        assert "此訂單已完成，不能再更改。" in html and "已確認發貨" in html
        assert "追蹤編號 <span class=\"code\">SF1234567890</span>" in html
    if status == "canceled":
        assert "此訂單已取消：客人取消。訂單無法恢復。" in html and "訂單已被拒絕" in html
        assert "已退回庫存：曲奇禮盒 (原味) × 1" in html


def test_an_expired_order_gives_its_reason_in_chinese(owner_client, owner, desk):
    from datetime import timedelta

    from domain.models import utcnow
    from domain.orders import expire_order

    order = desk["pending_payment"]
    db.session.execute(update(Order).where(Order.id == order.id)
                       .values(payment_deadline_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    expire_order(order.id)
    html = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "此訂單已取消：已過付款期限。訂單無法恢復。" in html and "原因：已過付款期限" in html
    assert "訂單已逾期" in html
    _no_english(html, "expired order")


# ------------------------------------------------------------------ refusals and flashes


def test_shipping_a_canceled_order_is_refused_in_chinese(owner_client, desk):
    order = desk["canceled"]
    expected = f"訂單 {order.number} 的狀態是「已取消」：不能發貨。"
    # a crafted POST (the page offers no such button): the page answers with the refusal
    # (and the form keeps what was typed)
    response = owner_client.post(f"/orders/{order.number}/ship", {"tracking_code": "X1"})
    assert response.status_code == 422
    assert expected in response.get_data(as_text=True)
    # htmx: the order body comes back with the refusal in place
    fragment = owner_client.post(f"/orders/{order.number}/ship", {}, htmx=True)
    assert fragment.status_code == 422 and expected in fragment.get_data(as_text=True)
    assert db.session.get(Order, order.id).status == OrderStatus.CANCELED


def test_success_and_form_errors_flash_in_chinese(owner_client, desk):
    order = desk["processing"]
    empty = owner_client.post(f"/orders/{order.number}/reject", {"reason": ""}, htmx=True)
    assert empty.status_code == 422 and "原因：請填寫原因。" in empty.get_data(as_text=True)
    done = owner_client.post(f"/orders/{order.number}/reject", {"reason": "缺貨"}, htmx=True)
    assert f"{order.number} 已被拒絕，庫存已退回。系統沒有退款。" in done.get_data(as_text=True)
    locked = owner_client.get(f"/orders/{order.number}/tracking/edit", htmx=True)
    assert "「已取消」的訂單不能更改追蹤編號。" in locked.get_data(as_text=True)


def test_the_same_refusal_stays_english_for_an_english_reader(owner_client, owner, desk):
    _speak(owner, "en")
    order = desk["canceled"]
    fragment = owner_client.post(f"/orders/{order.number}/ship", {}, htmx=True)
    assert f"Order {order.number} is Canceled: it cannot be shipped." in fragment.get_data(as_text=True)


# ------------------------------------------------------------------ Excel


XLSX_ZH_HEADERS = ["訂單編號", "日期", "狀態", "客戶姓名", "電話", "電郵", "地址", "付款方式",
                   "送貨方式", "送貨狀態", "追蹤編號", "小計", "折扣", "運費", "附加費用", "總計",
                   "來源", "備註"]


def _sheets(data: bytes):
    wb = load_workbook(io.BytesIO(data), read_only=True)
    orders_ws, items_ws = wb.worksheets
    rows = list(orders_ws.iter_rows(values_only=True))
    return wb.sheetnames, rows[0], rows[1:], next(items_ws.iter_rows(values_only=True))


def test_direct_export_in_chinese_for_a_chinese_reader(owner_client, desk):
    ids = [o.id for o in desk.values()]
    response = owner_client.post("/orders/export", {"ids": ids})
    names, header, rows, item_header = _sheets(response.data)
    assert names == ["訂單", "產品"]
    assert list(header) == XLSX_ZH_HEADERS
    assert item_header[:3] == ("訂單編號", "產品", "款式") and "單價" in item_header
    status_of = {row[0]: row[2] for row in rows}
    assert {status_of[o.number] for o in desk.values()} == set(ZH_STATUS.values())
    row = next(r for r in rows if r[0] == desk["completed"].number)
    assert row[9] == "已發貨" and row[16] == "網店"


def test_direct_export_in_english_for_an_english_reader(owner_client, owner, desk):
    _speak(owner, "en")
    response = owner_client.post("/orders/export", {"ids": [desk["processing"].id]})
    names, header, rows, item_header = _sheets(response.data)
    assert names == ["Orders", "Items"]
    assert header[:3] == ("Order number", "Date", "Status") and item_header[1] == "Product"
    assert rows[0][2] == "Processing" and rows[0][16] == "Online store"


@pytest.mark.parametrize("locale,first_header,status", [
    (ZH, "訂單編號", "付款待確認"), ("en", "Order number", "Payment pending confirmation")])
def test_background_export_uses_the_requesting_users_language(
        owner_client, owner, desk, run_worker, monkeypatch, locale, first_header, status):
    import blueprints.orders.routes as routes

    _speak(owner, locale)
    monkeypatch.setattr(routes, "SYNC_LIMIT", 0)  # every export runs as a job
    response = owner_client.post("/orders/export", {"scope": "matching",
                                                     "status": "pending_confirmation"})
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    job_url = urlparse(response.headers["Location"]).path
    assert run_worker()
    download = owner_client.get(job_url + "/download")
    assert download.status_code == 200
    names, header, rows, _items = _sheets(download.data)
    assert header[0] == first_header
    assert {r[2] for r in rows} == {status}


def test_a_job_without_a_staff_language_uses_the_stores(app, owner, desk):
    from domain.models import Job
    from domain.store import get_settings
    from jobs.exports import exporter_locale

    _speak(owner, None)
    db.session.add(Job(id="j-1", kind="export_orders", user_id=owner.id))
    db.session.add(Job(id="j-2", kind="export_orders", user_id=None))
    db.session.commit()
    get_settings().language = ZH
    db.session.commit()
    assert exporter_locale("j-1") == ZH and exporter_locale("j-2") == ZH
    _speak(owner, "en")
    assert exporter_locale("j-1") == "en"


def test_the_builder_translates_only_through_the_callable(app, desk, tmp_path):
    """Without a translate callable the workbook is English (the domain knows no locale)."""
    path = tmp_path / "en.xlsx"
    exports.export_orders([desk["canceled"].id], path)
    names, header, rows, _ = _sheets(path.read_bytes())
    assert names == ["Orders", "Items"] and header[0] == "Order number" and rows[0][2] == "Canceled"
