"""Views of issue 12's bulk ship and tracking import: with and without htmx, login and
CSRF required, crafted POSTs, the import journey (upload, preview, apply on a worker)."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from domain.db import db
from domain.models import Job, Order

pytest_plugins = ["jobs_fixtures"]


def upload(client, body: bytes, name="codes.csv", htmx=False, ship_all=False):
    data = {"file": (io.BytesIO(body), name)}
    if ship_all:
        data["ship_all"] = "y"
    return client.post("/orders/bulk/tracking/preview", data=data, htmx=htmx,
                       content_type="multipart/form-data")


def token_of(html: str) -> str:
    match = re.search(r'name="token" type="hidden" value="([^"]*)"', html) or \
        re.search(r'id="token" name="token" type="hidden" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def jobs():
    db.session.rollback()
    return db.session.scalar(select(func.count(Job.id)))


# ------------------------------------------------------------------ access


@pytest.mark.parametrize("method,url", [("get", "/orders/bulk/tracking"),
                                        ("post", "/orders/bulk/tracking/preview"),
                                        ("post", "/orders/bulk/tracking/apply"),
                                        ("post", "/orders/bulk/ship")])
def test_login_required(client, method, url):
    token = client.token_from(client.http.get("/login").get_data(as_text=True))
    kwargs = {"data": {"csrf_token": token}} if method == "post" else {}
    response = getattr(client.http, method)(url, **kwargs)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", ["/orders/bulk/tracking/preview", "/orders/bulk/tracking/apply",
                                 "/orders/bulk/ship"])
def test_csrf_required(staff_client, redis_conn, url):
    response = staff_client.post(url, data={"ids": "1", "scope": "selected", "token": "x" * 32},
                                 csrf=False)
    assert response.status_code == 400
    assert jobs() == 0


def test_orders_list_has_the_bulk_buttons(staff_client, make_order):
    make_order(payment="credit_card")
    html = staff_client.get("/orders").get_data(as_text=True)
    assert 'id="bulk-ship"' in html and 'formaction="/orders/bulk/ship"' in html
    assert 'href="/orders/bulk/tracking"' in html and "js/bulk_ship.js" in html


# ------------------------------------------------------------------ bulk ship


def test_bulk_ship_enqueues_a_job_and_redirects_to_its_progress(staff_client, make_order,
                                                                 redis_conn, run_worker):
    a, b = make_order(payment="credit_card"), make_order(payment="fps")
    response = staff_client.post("/orders/bulk/ship", data={"ids": [str(a.id), str(b.id)],
                                                            "scope": "selected"})
    assert response.status_code == 303
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    assert run_worker()
    page = staff_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Done: 1 order." in page and b.number in page and "cannot be shipped" in page
    db.session.rollback()
    assert db.session.get(Order, a.id).status == "completed"
    assert db.session.get(Order, b.id).status == "pending_payment"


def test_bulk_ship_with_htmx_redirects_htmx(staff_client, make_order, redis_conn):
    a = make_order(payment="credit_card")
    response = staff_client.post("/orders/bulk/ship", data={"ids": str(a.id)}, htmx=True)
    assert response.status_code == 204 and response.headers["HX-Redirect"].startswith("/jobs/")


def test_bulk_ship_all_matching_uses_the_query(staff_client, make_order, redis_conn, run_worker):
    a = make_order(payment="credit_card", name="甲乙丙")
    other = make_order(payment="credit_card", name="不同")
    response = staff_client.post("/orders/bulk/ship", data={"scope": "matching", "q": "甲乙丙"})
    assert response.status_code == 303
    assert run_worker()
    db.session.rollback()
    assert db.session.get(Order, a.id).status == "completed"
    assert db.session.get(Order, other.id).status == "processing"


@pytest.mark.parametrize("data", [
    {"ids": "1", "scope": "everything"},
    {"ids": "abc"},
    {"ids": "1" * 12},
    {"ids": [str(i) for i in range(10_001)]},
    {},  # nothing ticked
])
def test_bulk_ship_crafted_posts_are_refused_without_a_job(staff_client, redis_conn, data):
    response = staff_client.post("/orders/bulk/ship", data=data)
    assert response.status_code == 303 and response.headers["Location"].startswith("/orders")
    assert jobs() == 0


def test_bulk_ship_other_ids_are_skipped_not_shipped(staff_client, redis_conn, run_worker,
                                                     make_order):
    done = make_order(payment="fps")
    response = staff_client.post("/orders/bulk/ship", data={"ids": [str(done.id), "424242"]})
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    assert run_worker()
    db.session.rollback()
    job = db.session.get(Job, job_id)
    assert job.result["done"] == 0 and len(job.result["skipped"]) == 2
    assert db.session.get(Order, done.id).status == "pending_payment"


# ------------------------------------------------------------------ import journey


def test_import_page_with_and_without_htmx(staff_client):
    full = staff_client.get("/orders/bulk/tracking")
    assert full.status_code == 200 and "<html" in full.get_data(as_text=True)
    part = staff_client.get("/orders/bulk/tracking", htmx=True).get_data(as_text=True)
    assert 'id="importer"' in part and "<html" not in part


def test_import_journey_preview_apply_progress(staff_client, make_order, redis_conn, run_worker):
    a, b = make_order(payment="credit_card"), make_order(payment="credit_card")
    body = (f"Order number,Tracking code,Ship now\n{a.number},SF1,yes\n{b.number},SF2,no\n"
            "NOPE,SF3,no\n").encode()
    preview = upload(staff_client, body)
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "<html" in html
    assert "Set code and ship: 1" in html and "Set tracking code: 1" in html
    assert "No order NOPE in this store." in html
    db.session.rollback()
    assert db.session.get(Order, a.id).tracking_code == ""  # a preview changes nothing
    token = token_of(html)
    applied = staff_client.post("/orders/bulk/tracking/apply", data={"token": token})
    assert applied.status_code == 303 and "/jobs/" in applied.headers["Location"]
    assert run_worker()
    page = staff_client.get(applied.headers["Location"]).get_data(as_text=True)
    assert "Done: 2 orders." in page and "NOPE" in page
    db.session.rollback()
    assert (db.session.get(Order, a.id).status, db.session.get(Order, b.id).tracking_code) == \
        ("completed", "SF2")
    # the same token again: already applied
    again = staff_client.post("/orders/bulk/tracking/apply", data={"token": token})
    assert again.status_code == 303 and again.headers["Location"].endswith("/orders/bulk/tracking")


def test_import_with_htmx_returns_fragments_and_the_progress_component(staff_client, make_order,
                                                                       redis_conn):
    a = make_order(payment="credit_card")
    part = upload(staff_client, f"order number,tracking code\n{a.number},SF9\n".encode(),
                  htmx=True, ship_all=True).get_data(as_text=True)
    assert "<html" not in part and "Set code and ship: 1" in part
    applied = staff_client.post("/orders/bulk/tracking/apply", data={"token": token_of(part)},
                                htmx=True)
    html = applied.get_data(as_text=True)
    assert applied.status_code == 200 and 'class="job job-pending"' in html and "hx-get" in html


def test_import_refuses_bad_files_with_the_reason(staff_client):
    response = upload(staff_client, b"just,some\ncells,here\n")
    assert response.status_code == 422 and "The first row must be the header" in \
        response.get_data(as_text=True)
    assert upload(staff_client, b"\x89PNG....", name="x.png").status_code == 422
    nofile = staff_client.post("/orders/bulk/tracking/preview", data={},
                               content_type="multipart/form-data")
    assert nofile.status_code == 422


def test_nothing_to_change_offers_no_apply(staff_client, make_order):
    a = make_order(payment="credit_card")
    html = upload(staff_client, f"order number,tracking code\n{a.number},\n".encode()) \
        .get_data(as_text=True)
    assert "Nothing to change" in html and 'name="token"' not in html


def test_another_users_token_cannot_be_applied(app, staff_client, owner, make_order, redis_conn):
    from tests.conftest import Client

    a = make_order(payment="credit_card")
    token = token_of(upload(staff_client, f"order number,tracking code\n{a.number},SF1\n"
                            .encode()).get_data(as_text=True))
    other = Client(app).login(owner)
    response = other.post("/orders/bulk/tracking/apply", data={"token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("/tracking")
    for bad in ("../../etc/passwd", "", "x" * 200):
        assert staff_client.post("/orders/bulk/tracking/apply",
                                 data={"token": bad}).status_code == 303
    assert jobs() == 0


def test_user_text_in_the_file_is_escaped(staff_client):
    html = upload(staff_client, b"order number,tracking code\n<script>alert(1)</script>,X1\n") \
        .get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
