"""Export, bulk selection and saved views through the views; big exports on a real worker."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from domain import exports
from domain.db import db
from domain.models import Job, SavedView

pytest_plugins = ["jobs_fixtures"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def numbers_in(response) -> list[str]:
    wb = load_workbook(io.BytesIO(response.data), read_only=True)
    return [row[0] for row in wb["Orders"].iter_rows(min_row=2, values_only=True)]


def test_export_selected_downloads_exactly_those(owner_client, make_order):
    a, b, c = make_order(name="陳大文"), make_order(name="Amy"), make_order(name="Ben")
    response = owner_client.post("/orders/export", {"ids": [a.id, c.id]})
    assert response.status_code == 200 and response.mimetype == XLSX
    assert "attachment" in response.headers["Content-Disposition"]
    exported = numbers_in(response)
    assert sorted(exported) == sorted([a.number, c.number]) and b.number not in exported


def test_export_matching_means_the_query(owner_client, make_order):
    pending = make_order(name="陳大文")
    paid = [make_order(name=f"Paid {i}", payment="credit_card") for i in range(3)]
    response = owner_client.post("/orders/export", {"scope": "matching", "status": "processing",
                                                     "ids": [pending.id]})
    assert sorted(numbers_in(response)) == sorted(o.number for o in paid)


@pytest.mark.parametrize("ids,message", [
    ([], "Select at least one order"), (["abc"], "selection is not valid"),
    (["1 OR 1=1"], "selection is not valid"), (["9" * 20], "selection is not valid")])
def test_export_refuses_bad_selection(owner_client, make_order, ids, message):
    make_order()
    response = owner_client.post("/orders/export", {"ids": ids})
    assert response.status_code == 302
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert message in page


def test_export_needs_csrf_and_login(owner_client, client, make_order):
    order = make_order()
    assert owner_client.post("/orders/export", {"ids": [order.id]}, csrf=False).status_code == 400
    # signed out, with a valid token from the sign-in page: sent to sign in, nothing exported
    token = client.token_from(client.get("/login").get_data(as_text=True))
    anonymous = client.http.post("/orders/export", data={"ids": [order.id], "csrf_token": token})
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


def test_large_export_runs_on_a_real_worker(owner_client, make_variant, make_order, run_worker,
                                            monkeypatch):
    # given more orders than the direct-download limit (lowered so the test stays quick)
    monkeypatch.setattr(exports, "SYNC_LIMIT", 3)
    import blueprints.orders.routes as routes
    monkeypatch.setattr(routes, "SYNC_LIMIT", 3)
    v = make_variant(stock=None)
    orders = [make_order(items=[(v.id, 1)], name=f"客人{i}") for i in range(5)]

    # when
    response = owner_client.post("/orders/export", {"scope": "matching"})
    assert response.status_code == 302
    job_url = urlparse(response.headers["Location"]).path
    pending = owner_client.get(job_url, htmx=True).get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in pending  # the component polls itself
    assert run_worker()

    # then the component stops polling and offers the file
    done = owner_client.get(job_url, htmx=True).get_data(as_text=True)
    assert "every 1s" not in done and "Download" in done
    job = db.session.scalar(select(Job))
    assert (job.status, job.progress, job.total) == ("done", 5, 5)
    download = owner_client.get(job_url + "/download")
    assert download.status_code == 200
    assert sorted(numbers_in(download)) == sorted(o.number for o in orders)


def test_job_pages_are_private(app, owner_client, staff_client, make_order, run_worker,
                               monkeypatch):
    import blueprints.orders.routes as routes

    monkeypatch.setattr(routes, "SYNC_LIMIT", 0)
    make_order()
    location = owner_client.post("/orders/export", {"scope": "matching"}).headers["Location"]
    run_worker()
    job_url = urlparse(location).path
    assert staff_client.get(job_url).status_code == 404  # another user's file
    assert staff_client.get(job_url + "/download").status_code == 404
    assert owner_client.get("/jobs/not-a-job").status_code == 404


def test_saved_views(owner_client, staff_client, make_order):
    make_order(name="陳大文")
    response = owner_client.post("/orders/views", {"name": "Unpaid FPS",
                                                   "query_string": "status=pending_payment&payment=1&page=7&evil=1"})
    assert response.status_code == 302
    view = db.session.scalar(select(SavedView))
    assert view.query_string == "status=pending_payment&payment=1"  # canonical, no page, no junk
    page = owner_client.get("/orders").get_data(as_text=True)
    assert "Unpaid FPS" in page and "?status=pending_payment&amp;payment=1" in page
    assert "Unpaid FPS" not in staff_client.get("/orders").get_data(as_text=True)
    bad = owner_client.post("/orders/views", {"name": "", "query_string": "status=bogus"})
    assert bad.status_code == 302 and db.session.query(SavedView).count() == 1
    # another user cannot delete it
    staff_client.post(f"/orders/views/{view.id}/delete")
    assert db.session.query(SavedView).count() == 1
    owner_client.post(f"/orders/views/{view.id}/delete")
    assert db.session.query(SavedView).count() == 0


def test_filters_combine_and_tab_counts_follow(owner_client, make_order):
    from domain.models import PaymentMethod

    fps = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "fps"))
    a = make_order(name="Amy", payment="fps")
    b = make_order(name="Ben", payment="credit_card")
    c = make_order(name="Cat", payment="credit_card", shipping="pickup", address="")
    html = owner_client.get(f"/orders?payment={fps}").get_data(as_text=True)
    assert a.number in html and b.number not in html
    assert '<span class="count">1</span>' in html
    html = owner_client.get("/orders?source=online_store&delivery=unfulfilled&status=processing",
                            htmx=True).get_data(as_text=True)
    assert b.number in html and c.number in html and a.number not in html
    html = owner_client.get("/orders?from=2000-01-01&to=2000-01-02").get_data(as_text=True)
    assert "No orders match" in html


# ------------------------------------------------------------------ export without JavaScript


class _BulkForm(HTMLParser):
    """What a browser without JavaScript submits from #bulk-form: its own hidden
    fields, the ticked boxes that belong to it (form="bulk-form"), and its buttons."""

    def __init__(self, html: str):
        super().__init__()
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self.boxes: list[str] = []
        self.buttons: dict[str, dict] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == "bulk-form"
        mine = self.inside or a.get("form") == "bulk-form"
        if tag == "input" and mine and a.get("type") == "hidden":
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "input" and mine and a.get("type") == "checkbox":
            self.boxes.append(a["value"])
        elif tag == "button" and self.inside and a.get("id"):
            self.buttons[a["id"]] = a

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False

    def submit(self, button: str, ticked=()) -> dict:
        pressed = self.buttons[button]
        assert "disabled" not in pressed, f"{button} needs JavaScript to be enabled"
        data: dict[str, list[str]] = {}
        for name, value in [*self.fields, *(("ids", v) for v in ticked),
                            (pressed["name"], pressed["value"])]:
            data.setdefault(name, []).append(value)
        return data


def test_both_exports_work_without_javascript(owner_client, make_order):
    chans = [make_order(name="陳大文"), make_order(name="陳小明", payment="credit_card")]
    other = make_order(name="Amy Wong")
    html = owner_client.get("/orders?q=%E9%99%B3").get_data(as_text=True)
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline handlers (CSP script-src 'self')
    form = _BulkForm(html)

    # Export all: the button itself says scope=matching
    response = owner_client.http.post("/orders/export", data=form.submit("export-all"))
    assert response.mimetype == XLSX
    assert sorted(numbers_in(response)) == sorted(o.number for o in chans)

    # Export selected: enabled from the start, sends the ticked boxes
    response = owner_client.http.post("/orders/export",
                                      data=form.submit("export-selected", [str(chans[1].id)]))
    assert numbers_in(response) == [chans[1].number]

    # Export selected with nothing ticked: a clear refusal, back on the same list
    response = owner_client.http.post("/orders/export", data=form.submit("export-selected"))
    assert response.status_code == 302 and response.headers["Location"] == "/orders?q=%E9%99%B3"
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Select at least one order to export, or use “Export all”." in page
    assert other.number not in page


@pytest.mark.parametrize("scope", ["everything", "MATCHING", "matching ", ""])
def test_export_refuses_an_unknown_scope(owner_client, make_order, scope):
    order = make_order()
    response = owner_client.post("/orders/export", {"scope": scope, "ids": [order.id]})
    assert response.status_code == 302
    page = owner_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Choose “Export selected” or “Export all”." in page


def test_order_desk_templates_have_no_inline_event_handlers():
    # The Content-Security-Policy (script-src 'self') would silently refuse them.
    root = Path(__file__).resolve().parent.parent / "templates" / "orders"
    for template in root.glob("*.html"):
        found = re.findall(r"<[^>]*\son[a-z]+\s*=", template.read_text())
        assert not found, f"{template.name}: {found}"
