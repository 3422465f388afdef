"""The rehearsal's smoke journey over HTTPS, and the production checks (run by deploy/rehearse.sh).

A customer signs nothing: shop -> cart -> checkout with FPS -> uploads a ~10 MB
PNG proof. The owner signs in, confirms the payment from the desk, exports the
orders. Along the way: secure cookies and HSTS, client addresses behind the
proxy, upload limits, the unbuffered /events location, nginx's static files
with long cache headers and gzip, security headers on nginx's own pages, the
request id from nginx to the app's log, the worker's heartbeat in /healthz.

Only the standard library plus Pillow and openpyxl (both in the app's venv).
Every request has a timeout; any failed check raises with a clear message.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import ssl
import sys
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

TIMEOUT = 30
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
MB = 1024 * 1024


class CheckFailed(AssertionError):
    pass


def check(condition, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def step(message: str) -> None:
    print(f"  - {message}", flush=True)


class Response:
    def __init__(self, raw: http.client.HTTPResponse):
        self.status = raw.status
        self.headers = raw.headers
        self.body = raw.read()

    def header(self, name: str) -> str:
        return self.headers.get(name, "")

    def all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Browser:
    """One visitor: its own cookie jar, HTTPS with the rehearsal's certificate pinned."""

    def __init__(self, base: str, cacert: str, source: str = "127.0.0.1"):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.context = ssl.create_default_context(cafile=cacert)
        self.source = source
        self.base = base.rstrip("/")
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []
        # The page a form is sent from, and its Referrer-Policy: a browser sends
        # Referer (and Origin) as that policy says, and the app's CSRF check
        # over HTTPS looks at them.
        self.page_url = ""
        self.page_policy = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> Response:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=TIMEOUT, source_address=(self.source, 0))
        try:
            sent = dict(headers or {})
            if method == "POST" and self.page_url:
                if self.page_policy == "no-referrer":
                    sent.setdefault("Origin", "null")
                else:  # same-origin and the browsers' default both send it to this origin
                    sent.setdefault("Referer", self.page_url)
                    sent.setdefault("Origin", self.base)
            if self.cookies:
                sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            conn.request(method, path, body=body, headers=sent)
            response = Response(conn.getresponse())
        finally:
            conn.close()
        if method == "GET" and response.header("Content-Type").startswith("text/html"):
            self.page_url = self.base + path
            self.page_policy = response.header("Referrer-Policy").strip().lower()
        for raw in response.all("Set-Cookie"):
            self.set_cookie_headers.append(raw)
            jar = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **headers) -> Response:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: list[tuple[str, str]], **headers) -> Response:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.request("POST", path, urlencode(fields).encode(), headers)

    def post_multipart(self, path: str, fields: list[tuple[str, str]],
                       files: list[tuple[str, str, str, bytes]]) -> Response:
        boundary = uuid.uuid4().hex
        out = io.BytesIO()
        for name, value in fields:
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                      f"{value}\r\n".encode())
        for name, filename, mimetype, data in files:
            out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                      f'filename="{filename}"\r\nContent-Type: {mimetype}\r\n\r\n'.encode())
            out.write(data)
            out.write(b"\r\n")
        out.write(f"--{boundary}--\r\n".encode())
        return self.request("POST", path, out.getvalue(),
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html) or \
        re.search(r'"X-CSRFToken": "([^"]+)"', html)
    check(match, "no CSRF token on the page")
    return match.group(1)


def redirect_path(response: Response, expected_status=(302, 303)) -> str:
    check(response.status in expected_status,
          f"expected a redirect, got {response.status}: {response.text[:300]}")
    return urlsplit(response.header("Location")).path


def png_of_about(size: int) -> bytes:
    """A real PNG of random pixels (incompressible), a little under ``size`` bytes."""
    from PIL import Image

    side = int((size / 3) ** 0.5)
    while True:
        out = io.BytesIO()
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
            out, format="PNG", compress_level=1)
        if out.tell() <= size:
            return out.getvalue()
        side -= 8


def from_app(response: Response) -> bool:
    """The app answered (it echoes X-Request-ID); nginx's own answers have none."""
    return bool(response.header("X-Request-ID"))


def security_headers(response: Response, what: str, *, referrer="same-origin") -> None:
    csp = response.all("Content-Security-Policy")
    check(csp == [CSP], f"{what}: Content-Security-Policy should be sent once, exactly; got {csp}")
    hsts = response.all("Strict-Transport-Security")
    check(hsts == [HSTS], f"{what}: HSTS should be sent once as '{HSTS}'; got {hsts}")
    check(response.all("X-Content-Type-Options") == ["nosniff"], f"{what}: no nosniff")
    check(response.all("Referrer-Policy") == [referrer],
          f"{what}: Referrer-Policy should be {referrer}; got {response.all('Referrer-Policy')}")


def log_line(log_path: str, request_id: str, deadline: float = 5) -> str:
    """The app's one log line for ``request_id`` (waits briefly for the write)."""
    stop = time.monotonic() + deadline
    while True:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            lines = [x for x in fh if f"request_id={request_id} " in x and "shopdesk.request" in x]
        if lines or time.monotonic() > stop:
            break
        time.sleep(0.2)
    check(len(lines) == 1, f"expected one log line for request {request_id}, found {len(lines)}")
    return lines[0]


def run(args) -> None:
    customer = Browser(args.base, args.cacert)

    step("plain HTTP moves to HTTPS")
    parts = urlsplit(args.http)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    conn.request("GET", "/orders")
    plain = conn.getresponse()
    check(plain.status == 301 and plain.headers.get("Location", "").startswith("https://"),
          f"http:// should answer 301 to https://, got {plain.status}")
    conn.close()

    step("/healthz: database and Redis ok, the worker's sweep heartbeat arrives")
    stop = time.monotonic() + 45
    while True:
        health = customer.get("/healthz")
        body = json.loads(health.body) if health.status in (200, 503) else {}
        if health.status == 200 and body.get("worker_heartbeat_s") is not None:
            break
        check(time.monotonic() < stop, f"/healthz never showed a worker heartbeat: "
                                       f"{health.status} {health.text[:200]}")
        time.sleep(1)
    check(body["db"] == "ok" and body["redis"] == "ok", f"/healthz: {body}")
    check(health.header("Cache-Control") == "no-store", "/healthz may be cached")

    step("customer: product list, add to cart, checkout with FPS")
    shop = customer.get("/shop/")
    check(shop.status == 200, f"/shop/ answered {shop.status}")
    variant = re.search(r'name="variant_id" value="(\d+)"', shop.text)
    check(variant, "no product on /shop/")
    added = customer.post_form("/shop/cart/add", [("csrf_token", csrf_token(shop.text)),
                                                   ("variant_id", variant.group(1)),
                                                   ("quantity", "1")])
    redirect_path(added)
    cart = customer.get("/shop/cart")
    fps = re.search(r'name="payment_method" value="(\d+)"[^>]*>\s*<span class="choice-main">'
                    r"<strong>FPS</strong>", cart.text)
    check(fps, "FPS is not offered at checkout")
    shipping = re.search(r'name="shipping_method" value="(\d+)"', cart.text)
    check(shipping, "no shipping method at checkout")
    placed = customer.post_form("/shop/checkout", [
        ("csrf_token", csrf_token(cart.text)), ("name", "陳大文"), ("phone", "9123 4567"),
        ("email", "tai.man@example.hk"), ("address", "旺角彌敦道 1 號"),
        ("payment_method", fps.group(1)), ("shipping_method", shipping.group(1))])
    order_path = redirect_path(placed)
    check(order_path.startswith("/shop/o/"), f"checkout went to {order_path}")
    page = customer.get(order_path)
    check(page.status == 200, f"order page answered {page.status}")
    security_headers(page, "the customer's order page", referrer="no-referrer")
    number = re.search(r"<h1>Order (\S+)", page.text).group(1)
    step(f"order {number} placed")

    step("customer: a ~10 MB PNG proof passes nginx and the app")
    png = png_of_about(10 * MB - 64 * 1024)
    started = time.monotonic()
    uploaded = customer.post_multipart(f"{order_path}/proof", [("csrf_token", csrf_token(page.text))],
                                       [("proof", "receipt.png", "image/png", png)])
    check(uploaded.status != 413, f"a {len(png) / MB:.1f} MB upload got 413 "
                                  f"({'app' if from_app(uploaded) else 'nginx'})")
    check(redirect_path(uploaded) == order_path, "the proof upload did not come back to the order")
    step(f"uploaded {len(png) / MB:.2f} MB in {time.monotonic() - started:.1f} s")
    after = customer.get(order_path)
    check('data-status="pending_confirmation"' in after.text, "the order does not await confirmation")

    step("an 11.5 MB body is refused by the app's own page, a 13 MB one by nginx, both with headers")
    too_big = customer.post_multipart(f"{order_path}/proof", [("csrf_token", csrf_token(after.text))],
                                      [("proof", "big.png", "image/png", b"\0" * int(11.5 * MB))])
    check(too_big.status in (413, 422) and from_app(too_big),
          f"11.5 MB: expected the app's refusal, got {too_big.status} from "
          f"{'the app' if from_app(too_big) else 'nginx'}")
    conn = http.client.HTTPSConnection(customer.host, customer.port, context=customer.context,
                                       timeout=TIMEOUT)
    conn.putrequest("POST", f"{order_path}/proof")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(13 * MB))
    conn.endheaders()  # nginx refuses on the length alone, before any body
    huge = Response(conn.getresponse())
    conn.close()
    check(huge.status == 413 and not from_app(huge), f"13 MB: expected nginx's 413, got {huge.status}")
    security_headers(huge, "nginx's own 413 page")

    owner = Browser(args.base, args.cacert, source="127.0.0.3")
    step("owner signs in from 127.0.0.3, claiming to be 203.0.113.7 in X-Forwarded-For")
    # (Only on the sign-in page: Flask-Login's session protection hashes the first
    # X-Forwarded-For entry as sent, so a session must keep one value throughout.)
    login_page = owner.get("/login", **{"X-Forwarded-For": "203.0.113.7"})
    security_headers(login_page, "the sign-in page")
    request_id = login_page.header("X-Request-ID")
    check(re.fullmatch(r"[0-9a-f]{32}", request_id), f"nginx's request id did not come back: {request_id!r}")
    line = log_line(args.web_log, request_id)
    check(" addr=127.0.0.3" in line,
          f"the app logged the wrong client address (expected 127.0.0.3): {line.strip()}")
    check("203.0.113.7" not in line, "the app believed a client's X-Forwarded-For")
    signed_in = owner.post_form("/login", [("csrf_token", csrf_token(login_page.text)),
                                           ("email", args.email), ("password", args.password)])
    check(redirect_path(signed_in) == "/orders", f"sign-in failed: {signed_in.status}")
    check("user=" in log_line(args.web_log, signed_in.header("X-Request-ID"))
          and " user=-" not in log_line(args.web_log, signed_in.header("X-Request-ID")),
          "the sign-in's log line has no user id")
    cookies = [c for c in owner.set_cookie_headers if not re.search(r"max-age=0|expires=Thu, 01 Jan 1970", c, re.I)]
    check(cookies, "sign-in set no cookie")
    for cookie in cookies:
        attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
        check("secure" in attrs and "httponly" in attrs,
              f"cookie without Secure or HttpOnly: {cookie.split('=')[0]}")
    step("secure cookies; the app logged the real client 127.0.0.3 under nginx's request id")

    step(f"owner confirms the payment of {number} from the desk")
    desk = owner.get(f"/orders/{number}")
    check(desk.status == 200, f"desk order page answered {desk.status} "
                              f"(cookies sent: {sorted(owner.cookies)}; set: "
                              f"{[re.sub(r'=[^;]*', '=…', c, count=1) for c in owner.set_cookie_headers]})")
    security_headers(desk, "the desk's order page")
    if "no-store" not in desk.header("Cache-Control"):  # the app's business (issue 7), not nginx's
        print("  ! warning: the desk page has no Cache-Control: no-store", flush=True)
    confirmed = owner.post_form(f"/orders/{number}/confirm-payment",
                                [("csrf_token", csrf_token(desk.text))])
    redirect_path(confirmed)
    check('data-status="processing"' in owner.get(f"/orders/{number}").text,
          "the order is not paid after confirming")

    step("owner exports the orders (Excel)")
    listing = owner.get("/orders")
    ids = re.findall(r'name="ids" value="(\d+)"', listing.text)
    check(ids, "the paid list shows no order")
    exported = owner.post_form("/orders/export", [("csrf_token", csrf_token(listing.text)),
                                                  *[("ids", i) for i in ids]])
    check(exported.status == 200 and exported.body[:2] == b"PK",
          f"export answered {exported.status} {exported.header('Content-Type')}")
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(exported.body), read_only=True).active
    check(any(number in [str(c) for c in row] for row in sheet.iter_rows(values_only=True)),
          f"{number} is not in the export")

    step("static files: served by nginx, gzip, a year of immutable cache, security headers")
    css = re.search(r'href="(/static/css/[^"]+\.css[^"]*)"', listing.text)
    check(css, "no stylesheet link on the desk")
    static = owner.get(css.group(1).replace("&amp;", "&"), **{"Accept-Encoding": "gzip"})
    check(static.status == 200, f"{css.group(1)} answered {static.status}")
    check(not from_app(static), "the stylesheet came from the app, not from nginx")
    check(static.header("Content-Encoding") == "gzip", "the stylesheet is not gzipped")
    check("max-age=31536000" in static.header("Cache-Control")
          and "immutable" in static.header("Cache-Control"),
          f"static cache header: {static.header('Cache-Control')!r}")
    if "?v=" not in css.group(1):  # the app builds the URLs (blueprints/security.py, issue 7)
        print("  ! warning: static URLs carry no ?v=<hash>: a year-long immutable cache is not safe",
              flush=True)
    security_headers(static, "a static file")

    step("/events passes nginx unbuffered (nginx -T here; live streams in rehearse.sh)")
    config = open(args.nginx_config, encoding="utf-8").read()
    block = re.search(r"location /events \{(.*?)\}", config, re.S)
    check(block and "proxy_buffering off;" in block.group(1)
          and re.search(r"proxy_read_timeout\s+\d+[hm];", block.group(1)),
          "nginx has no unbuffered, long-lived /events location")
    events = owner.get("/events")
    check(from_app(events), "/events is not passed to the app")

    step("the worker logs its jobs")
    with open(args.worker_log, encoding="utf-8", errors="replace") as fh:
        worker_log = fh.read()
    check(re.search(r"shopdesk\.jobs job=\S+ request_id=\S+ event=start", worker_log),
          "the worker's log has no job start line")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("base", "http", "cacert", "email", "password", "web-log", "worker-log",
                 "nginx-config", "work-dir"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    started = time.monotonic()
    print(f"smoke journey against {args.base}", flush=True)
    try:
        run(args)
    except CheckFailed as exc:
        print(f"CHECK FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"smoke journey passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
