"""Desk → Products → Import / Export pages (blueprints/products/imports.py)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from sqlalchemy import func, select

from domain.db import db, write_transaction
from domain.inventory import reconcile
from domain.models import StockMove, Variant

HEADER = "product,variant,sku,barcode,price,stock,low_stock,description,archived\n"
GOOD = HEADER + "綠茶,100g,GT-100,,88,5,,新鮮,no\n綠茶,200g,GT-200,,150,,,,no\n"
BAD = HEADER + "綠茶,100g,GT-100,4006381333932,88,-5,,,no\n=cmd|' /C calc'!A0,,X-1,,1,,,,no\n"


def upload(client, text, name="products.csv", **kw):
    data = {"file": (io.BytesIO(text.encode() if isinstance(text, str) else text), name)}
    return client.post("/products/import/preview", data=data,
                       content_type="multipart/form-data", **kw)


def token_of(html: str) -> str:
    match = re.search(r'name="token" type="hidden" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def imports_folder(app) -> Path:
    return Path(app.config["GENERATED_FOLDER"]) / "imports"


def test_anonymous_is_sent_to_login(client):
    for url in ("/products/import", "/products/export.csv", "/products/export.xlsx"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    response = client.post("/products/import/apply", data={"token": "x" * 32}, csrf=False)
    assert response.status_code in (302, 400)


def test_import_is_owner_only_export_is_not(staff_client):
    assert staff_client.get("/products/import").status_code == 403
    assert upload(staff_client, GOOD).status_code == 403
    assert staff_client.get("/products/export.csv").status_code == 200


def test_preview_then_apply(app, owner_client):
    import os
    import time

    folder = imports_folder(app)
    folder.mkdir(parents=True)
    stale = folder / "stale-token-aaaaaaaaaaaaaaaa.bin"  # an upload nobody applied
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 2 * 86400,) * 2)

    page = upload(owner_client, GOOD)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "New product: 1" in html and "New variant: 1" in html
    assert db.session.scalar(select(func.count()).select_from(Variant)) == 0  # nothing yet
    token = token_of(html)
    assert len(list(imports_folder(app).glob(f"{token}.*"))) == 2
    assert not stale.exists()  # swept: kept uploads last a day

    done = owner_client.post("/products/import/apply", data={"token": token})
    assert done.status_code == 302 and done.headers["Location"].endswith("/products/")
    assert sorted(db.session.scalars(select(Variant.sku))) == ["GT-100", "GT-200"]
    assert list(imports_folder(app).glob(f"{token}.*")) == []  # the kept file is gone
    flashed = owner_client.get("/products/import").get_data(as_text=True)
    assert "1 product created" in flashed and "2 variants added" in flashed

    # Applying the same token twice does nothing more.
    again = owner_client.post("/products/import/apply", data={"token": token})
    assert again.status_code == 302 and again.headers["Location"].endswith("/products/import")
    # The same file again: unchanged, no apply button, no ledger rows.
    before = db.session.scalar(select(func.count()).select_from(StockMove))
    html = upload(owner_client, GOOD).get_data(as_text=True)
    assert "Nothing to change" in html and 'name="token"' not in html
    assert db.session.scalar(select(func.count()).select_from(StockMove)) == before
    assert reconcile() == []


def test_preview_with_errors_shows_reasons_and_no_apply(owner_client, owner):
    page = upload(owner_client, BAD)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'class="row-error"' in html and "Error: 2" in html
    assert "wrong check digit" in html and "0 or more" in html and "formula" in html
    assert "=cmd|&#39; /C calc&#39;!A0" in html  # shown escaped
    assert 'name="token"' not in html
    assert db.session.scalar(select(func.count()).select_from(Variant)) == 0

    # In Chinese: the page and every reason.
    from domain.models import User

    db.session.get(User, owner.id).locale = "zh_Hant_HK"
    db.session.commit()
    html = upload(owner_client, BAD).get_data(as_text=True)
    assert "匯入產品" in html and "錯誤" in html and "校驗碼" in html
    assert "wrong check digit" not in html and "formula" not in html


def test_refused_files_keep_the_form(owner_client):
    for data, name, text in [(b"", "p.csv", "The file is empty."),
                             (b"\x00\x01binary", "p.csv", "not readable CSV"),
                             (b"a,b\n", "p.pdf", ".csv or .xlsx"),
                             (b"name\nx\n", "p.csv", "missing: product")]:
        page = upload(owner_client, data, name)
        assert page.status_code == 422, name
        html = page.get_data(as_text=True)
        assert text in html and 'name="file"' in html


def test_csrf_is_required(app, owner_client):
    response = upload(owner_client, GOOD, csrf=False)
    assert response.status_code == 400
    html = upload(owner_client, GOOD).get_data(as_text=True)
    token = token_of(html)
    response = owner_client.post("/products/import/apply", data={"token": token}, csrf=False)
    assert response.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Variant)) == 0


def test_token_of_another_owner_or_made_up_is_refused(app, owner_client):
    from domain.accounts import create_user
    from tests.conftest import Client

    html = upload(owner_client, GOOD).get_data(as_text=True)
    token = token_of(html)
    other = create_user(email="owner2@shop.test", password="correct horse battery",
                        role="owner", name="Other")
    second = Client(app).login(other)
    for bad in (token, "../../etc/passwd", "x" * 32):
        response = second.post("/products/import/apply", data={"token": bad})
        assert response.status_code == 302
        assert response.headers["Location"].endswith("/products/import")
    assert db.session.scalar(select(func.count()).select_from(Variant)) == 0


def test_upload_page_and_exports(owner_client, make_variant):
    page = owner_client.get("/products/import")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in html and 'name="csrf_token"' in html
    assert "/products/export.csv" in html and "/products/export.xlsx" in html
    fragment = owner_client.get("/products/import", htmx=True).get_data(as_text=True)
    assert "<html" not in fragment and 'name="file"' in fragment

    make_variant(name="=1+1 cookies")
    csv_response = owner_client.get("/products/export.csv")
    assert csv_response.status_code == 200
    disposition = csv_response.headers["Content-Disposition"]
    assert re.search(r'attachment; filename="products-\d{8}-\d{4}\.csv"', disposition)
    body = csv_response.get_data().decode("utf-8-sig")
    assert body.startswith("product,") and "'=1+1 cookies" in body
    xlsx = owner_client.get("/products/export.xlsx")
    assert xlsx.status_code == 200 and xlsx.get_data()[:2] == b"PK"
    assert ".xlsx" in xlsx.headers["Content-Disposition"]


# ------------------------------------------------------------------ in a real browser

SHOTS = Path("/tmp/shots/h2")


def test_import_in_the_browser(live_server, browser, owner, tmp_path):
    """Upload → preview with errors (no console/CSP errors), at desk and phone widths,
    in English and Chinese; screenshots go to /tmp/shots/h2 for a person to look at."""
    from conftest import browser_login

    from domain.models import User

    SHOTS.mkdir(parents=True, exist_ok=True)
    bad = tmp_path / "products.csv"
    bad.write_text(HEADER + "綠茶,100g,GT-100,,88,5,,新鮮,no\n"
                   "綠茶,200g,GT-200,4006381333932,150,,,,no\n"
                   "Oolong,,GT-100,,12.345,-5,,,no\n"
                   "=HYPERLINK(\"http://evil\"),,X-1,,1,,,,no\n", encoding="utf-8")
    problems: list[str] = []
    for locale in ("en", "zh_Hant_HK"):
        with write_transaction() as session:  # a fresh snapshot: the server wrote meanwhile
            session.get(User, owner.id).locale = locale
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        browser_login(page, live_server, owner.email)
        for width, height in ((1280, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.goto(f"{live_server}/products/import")
            page.screenshot(path=str(SHOTS / f"import-{locale}-{width}.png"), full_page=True)
            page.set_input_files("input[name=file]", str(bad))
            page.click("form[action$='/import/preview'] button[type=submit]")
            page.wait_for_selector("tr.row-error")
            assert page.locator("tr.row-error").count() == 3
            assert page.locator("form[action$='/import/apply']").count() == 0
            page.screenshot(path=str(SHOTS / f"preview-{locale}-{width}.png"), full_page=True)
        assert problems == []
        context.close()


def test_preview_lists_changes_of_an_update(owner_client, make_variant):
    variant = make_variant(name="曲奇", variant="原味", price_cents=12800, stock=10)
    text = HEADER + f"曲奇,原味,{variant.sku},{variant.barcode},130,12,,,no\n"
    html = upload(owner_client, text).get_data(as_text=True)
    assert "Update: 1" in html and "Changes: Price, Stock" in html
    token = token_of(html)
    assert owner_client.post("/products/import/apply", data={"token": token}).status_code == 302
    db.session.expire_all()
    stored = db.session.get(Variant, variant.id)
    assert (stored.price_cents, stored.stock) == (13000, 12)
    move = db.session.scalars(select(StockMove).where(StockMove.variant_id == variant.id)
                              .order_by(StockMove.id.desc())).first()
    assert (move.reason, move.delta, move.note, move.actor_label) == \
        ("import", 2, "products.csv", "Olivia Owner")
    assert reconcile() == []
