"""Security and caching headers on every kind of response, the styled error pages,
the favicon, and the app's own answer to an over-long URL."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from app import create_app
from blueprints.security import CONTENT_SECURITY_POLICY

ROOT = Path(__file__).resolve().parent.parent

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"


def no_store(response) -> bool:
    directives = {d.strip() for d in response.headers.get("Cache-Control", "").split(",")}
    return "no-store" in directives


def assert_private_html(response):
    """A page about a person: the exact CSP, framing refused, kept in no cache."""
    assert response.mimetype == "text/html"
    assert response.headers.get("Content-Security-Policy") == CSP
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert no_store(response), response.headers.get("Cache-Control")
    assert "Strict-Transport-Security" not in response.headers  # development, plain HTTP


def test_the_policy_is_the_planned_one():
    assert CONTENT_SECURITY_POLICY == CSP


# ------------------------------------------------------------------ desk pages


def test_desk_pages_are_never_cached(owner_client, make_order):
    order = make_order()
    for url in ("/orders", f"/orders/{order.number}", "/review/", "/drafts/", "/settings/store"):
        response = owner_client.get(url, follow_redirects=True)
        assert response.status_code == 200, url
        assert_private_html(response)


def test_htmx_fragment_has_the_same_headers(owner_client, make_order):
    make_order()
    response = owner_client.get("/orders?status=pending_payment", htmx=True)
    assert response.status_code == 200
    assert "<html" not in response.get_data(as_text=True)  # a fragment, not the page
    assert_private_html(response)


def test_sign_in_page_and_redirects_are_not_cached(client):
    login = client.get("/login")
    assert_private_html(login)
    redirect = client.get("/orders")
    assert redirect.status_code == 302 and no_store(redirect)


def test_desk_download_is_not_cached(owner_client, make_order):
    order = make_order()
    response = owner_client.post("/orders/export", {"ids": [order.id]})
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    # send_file said "no-cache" (may be stored, revalidated): a customer list must not be stored
    assert response.headers["Cache-Control"] == "no-store"


# ------------------------------------------------------------------ customer pages


def test_customer_order_page_is_private(client, make_order):
    order = make_order()
    response = client.get(f"/shop/o/{order.public_token}")
    assert response.status_code == 200
    assert_private_html(response)
    assert response.headers["Referrer-Policy"] == "no-referrer"  # the shop's own, kept


def test_cart_and_refused_checkout_are_not_cached(client, make_variant):
    cart = client.get("/shop/cart")
    assert_private_html(cart)
    client._token = client.token_from(cart.get_data(as_text=True))
    assert client.post("/shop/cart/add", {"variant_id": make_variant().id, "quantity": 1}
                       ).status_code == 302
    # the checkout form comes back with the customer's name and address in it
    response = client.post("/shop/checkout", {"name": "陳大文", "address": "旺角彌敦道 1 號"})
    assert response.status_code == 422 and "旺角彌敦道" in response.get_data(as_text=True)
    assert_private_html(response)


def test_customer_proof_file_keeps_its_own_stricter_policy(client, make_order):
    order = make_order()
    page = client.get(f"/shop/o/{order.public_token}")
    client._token = client.token_from(page.get_data(as_text=True))
    png = BytesIO()
    Image.new("RGB", (40, 30), "white").save(png, "PNG")
    uploaded = client.post(f"/shop/o/{order.public_token}/proof",
                           {"proof": (BytesIO(png.getvalue()), "r.png", "image/png")},
                           content_type="multipart/form-data")
    assert uploaded.status_code == 302
    served = client.get(f"/shop/o/{order.public_token}/proof")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; img-src 'self'; sandbox"
    assert no_store(served)


def test_public_shop_page_has_the_policy_and_may_be_cached(client, make_variant):
    make_variant()
    response = client.get("/shop/")
    assert response.status_code == 200
    assert response.headers.get("Content-Security-Policy") == CSP
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert not no_store(response)


# ------------------------------------------------------------------ static files


def static_url(html: str, name: str) -> str:
    match = re.search(r'(?:href|src)="(/static/' + re.escape(name) + r'[^"]*)"', html)
    assert match, f"no link to {name}"
    return match.group(1).replace("&amp;", "&")


def test_static_files_are_versioned_and_cached_for_a_year(client):
    html = client.get("/login").get_data(as_text=True)
    for name in ("css/app.css", "js/app.js", "vendor/htmx.min.js"):
        url = static_url(html, name)
        # the URL carries the file's content hash, so a changed file gets a new URL
        assert re.fullmatch(r"/static/" + re.escape(name) + r"\?v=[0-9a-f]{10}", url), url
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert not no_store(response)
        assert "Content-Security-Policy" not in response.headers  # not a page
        response.close()


def test_static_version_follows_the_content(app, tmp_path):
    static = tmp_path / "static"
    static.mkdir()
    (static / "a.css").write_text("a { color: red }")
    app.static_folder = str(static)
    from flask import url_for

    with app.test_request_context():
        first = url_for("static", filename="a.css")
        (static / "a.css").write_text("a { color: blue }")
        os.utime(static / "a.css", ns=(time.time_ns() + 10**9,) * 2)
        second = url_for("static", filename="a.css")
    assert first != second and "?v=" in second


def test_unversioned_static_url_gets_a_day(client):
    response = client.get("/static/css/app.css")
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    response.close()


# ------------------------------------------------------------------ HSTS


def production_app(app, monkeypatch, proxies="0"):
    monkeypatch.setenv("SHOPDESK_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("SHOPDESK_PROXY_COUNT", proxies)
    return create_app({"TESTING": True,
                       "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]})


def test_hsts_in_production_over_https_only(app, monkeypatch):
    prod = production_app(app, monkeypatch)
    with prod.app_context():
        http = prod.test_client()
        assert http.get("/login", base_url="https://shop.example.com").headers.get(
            "Strict-Transport-Security") == HSTS
        assert "Strict-Transport-Security" not in http.get(
            "/login", base_url="http://shop.example.com").headers
    # development never sends it, even over HTTPS
    assert "Strict-Transport-Security" not in app.test_client().get(
        "/login", base_url="https://shop.example.com").headers


def test_hsts_behind_nginx_follows_x_forwarded_proto(app, monkeypatch):
    prod = production_app(app, monkeypatch, proxies="1")
    with prod.app_context():
        http = prod.test_client()
        tls = http.get("/login", headers={"X-Forwarded-Proto": "https"})
        assert tls.headers.get("Strict-Transport-Security") == HSTS
        assert "Strict-Transport-Security" not in http.get(
            "/login", headers={"X-Forwarded-Proto": "http"}).headers


# ------------------------------------------------------------------ error pages


def test_404_on_the_desk_is_styled_with_a_way_back(owner_client):
    response = owner_client.get("/orders/SD999999")
    assert response.status_code == 404
    assert_private_html(response)
    html = response.get_data(as_text=True)
    assert 'class="topbar"' in html and "Error 404" in html and "Not found" in html
    assert re.search(r'<a class="btn btn-primary" href="/orders">Back to orders</a>', html)


def test_403_for_staff_on_settings_is_styled(staff_client):
    response = staff_client.get("/settings/store")
    assert response.status_code == 403
    assert_private_html(response)
    html = response.get_data(as_text=True)
    assert "Error 403" in html and "Not allowed" in html and "Back to orders" in html
    assert "Forbidden" not in html  # not werkzeug's bare page


def test_404_in_the_shop_has_the_shop_layout(client):
    response = client.get("/shop/o/not-a-real-link")
    assert response.status_code == 404
    assert_private_html(response)
    html = response.get_data(as_text=True)
    assert 'class="shop-head"' in html and "css/shop.css" in html
    assert "Back to the shop" in html and 'href="/shop/"' in html
    assert "Back to orders" not in html and 'class="topbar"' not in html


def test_404_elsewhere_offers_sign_in_and_the_shop(client):
    html = client.get("/no-such-page").get_data(as_text=True)
    assert "Sign in to the order desk" in html and "Visit the shop" in html


def test_405_is_styled(owner_client):
    response = owner_client.post("/orders")  # the list is GET only
    assert response.status_code == 405
    assert "Error 405" in response.get_data(as_text=True)
    assert_private_html(response)


# ------------------------------------------------------------------ favicon


def test_favicon_is_served(client):
    ico = client.get("/favicon.ico")
    assert ico.status_code == 200 and ico.mimetype == "image/vnd.microsoft.icon"
    assert Image.open(BytesIO(ico.data)).format == "ICO"
    assert not no_store(ico)
    html = client.get("/login").get_data(as_text=True)
    assert '<link rel="icon" href="/favicon.ico"' in html
    svg = client.get(static_url(html, "icon.svg"))
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    svg.close()
    ico.close()


# ------------------------------------------------------------------ over-long URLs


@pytest.mark.parametrize("length", [3000, 10000])
def test_overlong_search_url_gets_the_styled_414(owner_client, length):
    url = "/orders?q=" + "x" * (length - len("/orders?q="))
    assert len(url) == length
    response = owner_client.get(url)
    assert response.status_code == 414
    assert_private_html(response)
    html = response.get_data(as_text=True)
    assert "Address too long" in html and "Back to orders" in html


def test_overlong_url_in_the_shop_has_the_shop_layout(client):
    response = client.get("/shop/?q=" + quote("抹茶" * 400))  # 7,200 characters encoded
    assert response.status_code == 414
    html = response.get_data(as_text=True)
    assert "Address too long" in html and "Back to the shop" in html


def test_a_long_but_reasonable_url_is_served(owner_client):
    # the longest search the box allows, in Chinese, with every filter: well under the limit
    url = ("/orders?q=" + quote("陳" * 100) + "&status=processing&paid=paid"
           + "".join(f"&source={s}" for s in ("online_store", "draft", "admin")))
    assert 900 < len(url) < 2048
    assert owner_client.get(url).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw_get(port: int, target: str) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                     .encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


@pytest.mark.parametrize("limit,expect_styled", [(None, False), ("0", True)])
def test_gunicorn_lets_the_app_answer_a_10000_character_url(db_path, tmp_path, limit,
                                                            expect_styled):
    """Real gunicorn: by default (limit 4094) it answers its own bare 414 before the app sees
    the request; with --limit-request-line 0 (nginx bounds the line in front) the app's styled
    page shows."""
    port = _free_port()
    args = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}"]
    if limit is not None:
        args += ["--limit-request-line", limit]
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": "t" * 40,
           "SHOPDESK_ENV": "development"}
    server = subprocess.Popen([*args, "app:create_app()"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _raw_get(port, "/favicon.ico")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert status == 200
        status, body = _raw_get(port, "/shop/?q=" + "x" * 9991)  # 10,000 characters
        if expect_styled:
            assert status == 414 and "Address too long" in body and "Back to the shop" in body
        else:
            assert status == 414 and "Address too long" not in body
    finally:
        server.terminate()
        server.wait(timeout=10)
