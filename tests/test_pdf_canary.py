"""Papers read nothing but the store's own files (issue 11): a canary HTTP server on
loopback must receive no request, and no file outside the instance folder is opened,
whatever the customer's name, address or the product's name says."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_documents_fixtures import *  # noqa: F403 (fixtures)
from test_documents_fixtures import book, keep, pdf_text, squash

from domain.db import db
from domain.documents import KINDS, render_pdf
from domain.documents.render import html_to_pdf
from domain.documents.safety import REFUSED, allowed_file, allowed_roots, make_link_callback


class Canary:
    def __init__(self):
        self.requests: list[str] = []
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                canary.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.end_headers()
                self.wfile.write(b"body { color: red }")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary():
    server = Canary()
    # The canary itself works: a request reaches it.
    import urllib.request

    urllib.request.urlopen(server.url("alive"), timeout=5).read()
    assert server.requests == ["/alive"]
    server.requests.clear()
    yield server
    server.close()


class OpenedFiles:
    """Every file the process opens while ``watching`` (a sys audit hook: once added it
    stays for the process, so it records only while switched on)."""

    _hook_installed = False
    watching: list[str] | None = None

    @classmethod
    def install(cls):
        if not cls._hook_installed:
            def hook(event, args):
                if event == "open" and cls.watching is not None and args and args[0]:
                    cls.watching.append(str(args[0]))
            sys.addaudithook(hook)
            cls._hook_installed = True

    def __enter__(self):
        self.install()
        self.paths: list[str] = []
        OpenedFiles.watching = self.paths
        return self

    def __exit__(self, *exc):
        OpenedFiles.watching = None


def hostile(canary: Canary) -> dict[str, str]:
    return {
        "name": f'<img src="{canary.url("canary-name")}">',
        "address": (f'<link rel="stylesheet" href="file:///etc/passwd">'
                    f'<link rel="stylesheet" href="{canary.url("link.css")}">'
                    f"<style>@import url({canary.url('import.css')}); "
                    f"body {{ background-image: url({canary.url('bg')}) }}</style>"),
        "product": (f"<div style=\"background-image: url({canary.url('style-attr')})\">x</div>"
                    f"<img src=\"file:///etc/passwd\"><img src=\"/etc/passwd\">"
                    f"<pdf:font name=\"x\" src=\"{canary.url('font.ttf')}\"/>"),
    }


@pytest.fixture
def hostile_orders(canary, make_order, make_variant, store_info):
    bad = hostile(canary)
    variant = make_variant(name=bad["product"], variant=f"@import '{canary.url('v.css')}';")
    order = make_order(items=[(variant.id, 2)], name=bad["name"], address=bad["address"],
                       shipping="logistics", extra_charge_cents=100, locale="en")
    order.extra_charge_label = f'<img src="{canary.url("extra")}">'
    store_info.name = f'<img src="{canary.url("store")}">'
    store_info.invoice_note = f"<style>@import url({canary.url('note.css')});</style>"
    db.session.commit()
    book(order, recipient=bad["name"], address=bad["address"],
         service=f'<img src="{canary.url("service")}">')
    return order, bad


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_values_are_printed_not_fetched(kind, canary, hostile_orders):
    order, bad = hostile_orders
    # Warm: the first render of a process reads the font files, ReportLab's settings
    # and the time-zone data once; the one watched below is what every render reads.
    render_pdf(kind, [order.id])
    with OpenedFiles() as opened:
        pdf = render_pdf(kind, [order.id])
    keep(f"canary-{kind}", pdf)
    assert canary.requests == []
    assert not [p for p in opened.paths if "passwd" in p]
    # The markup is text on the paper, escaped, not markup the renderer obeyed.
    text = squash(pdf_text(pdf))
    if kind == "pick_list":
        assert squash("<div style=") in text
    else:
        assert squash(f'<img src="{canary.url("canary-name")}">') in text
    # The only files opened are under the instance folder, the paper templates (Jinja
    # checks them) and Python's own: nothing under /etc, the code or the home folder.
    templates = str(Path(__file__).resolve().parents[1] / "templates" / "documents")
    roots = [str(r) for r in allowed_roots()] + [templates]
    outside = [p for p in opened.paths if not any(p.startswith(r) for r in roots)
               and not p.startswith((sys.prefix, sys.base_prefix))]
    assert outside == [], outside


def test_markup_that_reaches_the_renderer_still_fetches_nothing(app, canary):
    """Escaping is the first wall; the link callback and the resource policy are the
    second: raw markup full of references renders without one request or read."""
    html = f"""<html><head>
    <link rel="stylesheet" href="{canary.url('head.css')}">
    <link rel="stylesheet" href="file:///etc/passwd">
    <style>
      @import url({canary.url('import.css')});
      @import "{canary.url('import2.css')}";
      @font-face {{ font-family: evil; src: url({canary.url('font.ttf')}); }}
      body {{ background-image: url({canary.url('bg.png')}); font-family: evil; }}
      @page {{ background-image: url({canary.url('page.png')}); }}
    </style></head><body>
    <img src="{canary.url('img.png')}">
    <img src="file:///etc/passwd"><img src="/etc/passwd"><img src="../../../../etc/passwd">
    <img src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3Cimage href='{canary.url('svg')}'/%3E%3C/svg%3E">
    <div style="background-image: url({canary.url('div.png')})">text</div>
    <p>canary page</p></body></html>"""
    with OpenedFiles() as opened:
        pdf = html_to_pdf(html)
    assert pdf.startswith(b"%PDF-")
    assert canary.requests == []
    assert not [p for p in opened.paths if "passwd" in p]


def test_link_callback_allows_only_store_files(app, tmp_path):
    roots = allowed_roots()
    callback = make_link_callback(roots)
    upload = Path(app.config["UPLOAD_FOLDER"])
    logo = upload / "logo" / "logo-1.png"
    logo.parent.mkdir(parents=True, exist_ok=True)
    logo.write_bytes(b"\x89PNG\r\n\x1a\n")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"secret")
    link = upload / "logo" / "link.png"
    link.symlink_to(outside)

    assert callback(str(logo), None) == str(logo.resolve())
    for refused in ("http://127.0.0.1:1/x", "https://example.com/logo.png",
                    f"file://{logo}", "data:image/png;base64,iVBORw0KGgo=", "ftp://x/y",
                    "/etc/passwd", str(outside), str(link), str(upload / "logo"),
                    str(upload / "logo" / ".." / ".." / ".." / "secret.png"),
                    "logo/logo-1.png", str(upload / "missing.png"), "", "\x00",
                    f"{logo}\x00.png"):
        assert callback(refused, None) == REFUSED, refused
    assert allowed_file(None, roots) is None and allowed_file(12, roots) is None
