"""gzip (blueprints/compression.py, issue 14's page weight): static files always, pages
only when this site itself asked for them (Sec-Fetch-Site same-origin or none), so a
page with the CSRF token beside a search term is never a BREACH oracle for another
site; and the list's first load in a real browser stays under 60 KB besides htmx."""

from __future__ import annotations

import gzip
import re

import pytest
from conftest import browser_login

from blueprints.compression import Compress

SAME = {"Accept-Encoding": "gzip, deflate, br", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def many_orders(app):
    from domain.demo import seed_demo

    seed_demo(80, seed=3)


def test_a_page_asked_for_by_the_site_itself_is_gzipped(owner_client, many_orders):
    plain = owner_client.get("/orders", headers={"HX-Request": "true"})
    packed = owner_client.get("/orders", headers={**SAME, "HX-Request": "true"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Sec-Fetch-Site" in packed.headers["Vary"] and "Accept-Encoding" in packed.headers["Vary"]
    assert "HX-Request" in packed.headers["Vary"]  # the app's own Vary is kept
    body = gzip.decompress(packed.data)
    assert int(packed.headers["Content-Length"]) == len(packed.data) < len(body) / 3
    # The same page (but for the per-request CSRF token's signature).
    strip = lambda b: re.sub(rb'value="[^"]*\.[^"]*"', b"", b)  # noqa: E731
    assert strip(body) == strip(plain.data)
    assert packed.headers["Cache-Control"] == "no-store"  # the app's headers survive


@pytest.mark.parametrize("site", ["cross-site", "same-site", None])
def test_a_page_another_site_asked_for_is_not(owner_client, many_orders, site):
    headers = {"Accept-Encoding": "gzip"} | ({"Sec-Fetch-Site": site} if site else {})
    response = owner_client.get("/orders?q=csrf_token", headers=headers)
    assert response.status_code == 200 and "Content-Encoding" not in response.headers
    assert b"csrf_token" in response.data and "Sec-Fetch-Site" in response.headers["Vary"]


def test_static_files_are_always_gzipped_and_keep_their_long_cache(client):
    page = client.get("/login").get_data(as_text=True)
    css = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]+)"', page).group(1)
    response = client.get(css, headers={"Accept-Encoding": "gzip", "Sec-Fetch-Site": "cross-site"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert "immutable" in response.headers["Cache-Control"]
    assert b"table.orders" in gzip.decompress(response.data)
    if "ETag" in response.headers:
        assert response.headers["ETag"].endswith('-gz"')


def _wsgi(status, content_type, body=b"x" * 5000, stream=False):
    def app(environ, start_response):
        start_response(status, [("Content-Type", content_type)])
        if stream:
            return iter([b"data: 1\n\n", b"data: 2\n\n"])
        return [body]
    return app


def _call(app, **environ):
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "HTTP_ACCEPT_ENCODING": "gzip",
            "HTTP_SEC_FETCH_SITE": "same-origin"}
    body = b"".join(Compress(app)(base | environ, start_response))
    return seen, body


@pytest.mark.parametrize("status,kind,why", [
    ("200 OK", "text/event-stream", "a stream is passed on as it comes"),
    ("200 OK", "application/pdf", "PDFs and spreadsheets are compressed already"),
    ("200 OK", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    ("206 Partial Content", "text/plain", "a range is a slice of the plain bytes"),
    ("304 Not Modified", "text/css", "no body"),
])
def test_what_is_never_compressed(status, kind, why):
    seen, body = _call(_wsgi(status, kind, stream=kind == "text/event-stream"))
    assert "Content-Encoding" not in seen["headers"], why
    assert body == (b"data: 1\n\ndata: 2\n\n" if kind == "text/event-stream" else b"x" * 5000)


def test_small_bodies_head_requests_and_no_gzip_in_accept():
    seen, body = _call(_wsgi("200 OK", "text/html", body=b"<p>hi</p>"))
    assert "Content-Encoding" not in seen["headers"] and body == b"<p>hi</p>"
    seen, _ = _call(_wsgi("200 OK", "text/html"), REQUEST_METHOD="HEAD")
    assert "Content-Encoding" not in seen["headers"]
    seen, _ = _call(_wsgi("200 OK", "text/html"), HTTP_ACCEPT_ENCODING="br")
    assert "Content-Encoding" not in seen["headers"]


def test_the_list_first_load_weighs_under_60_kb_besides_htmx(live_server, browser, owner,
                                                            many_orders):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    browser_login(page, live_server, owner.email)
    fresh = browser.new_context(viewport={"width": 1280, "height": 900})
    fresh.add_cookies(page.context.cookies())  # signed in, and nothing cached yet
    first = fresh.new_page()
    first.goto(f"{live_server}/orders")
    first.wait_for_load_state("networkidle")
    entries = first.evaluate("""() => [
        ...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')
    ].map(e => ({name: e.name, size: e.transferSize, body: e.decodedBodySize}))""")
    assert first.locator("tr.order-row").count() == 50
    counted = [e for e in entries if "/vendor/htmx" not in e["name"]]
    total = sum(e["size"] for e in counted)
    print(f"first load: {total / 1024:.1f} KB transferred besides htmx "
          f"({sum(e['body'] for e in counted) / 1024:.1f} KB decoded), "
          + ", ".join(f"{e['name'].split('/')[-1].split('?')[0] or 'orders'} {e['size']}"
                      for e in counted))
    assert all(e["size"] > 0 for e in counted)  # nothing came from a cache: a real first load
    assert total <= 60 * 1024
    # Static files carry their content hash and a year's cache.
    for e in counted:
        if "/static/" in e["name"]:
            assert re.search(r"\?v=[0-9a-f]{8,}", e["name"]), e["name"]
    css = [e["name"] for e in counted if e["name"].split("?")[0].endswith("app.css")][0]
    headers = first.request.get(css).headers
    assert "max-age=31536000" in headers["cache-control"] and "immutable" in headers["cache-control"]
    fresh.close()
