"""Bulk papers and carrier shipments as jobs on a real RQ burst worker, and their
routes with and without htmx (issue 11)."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from domain.actors import Actor
from domain.db import db
from domain.models import Job, Order, OrderEvent, Shipment
from domain.shipments import create_shipment

pytest_plugins = ["jobs_fixtures"]

STAFF = Actor("staff", 1, "Tester")


def fresh_job(job_id):
    db.session.rollback()
    return db.session.get(Job, job_id)


def job_id_from(response):
    if response.status_code == 302:
        return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    match = re.search(r'id="job-([0-9a-f-]{36})"', response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1)


def pdf_of(client, job_id):
    response = client.get(f"/jobs/{job_id}/download")
    assert response.status_code == 200
    data = response.get_data()
    assert data.startswith(b"%PDF")
    return PdfReader(io.BytesIO(data))


@pytest.fixture
def logistics(make_order):
    def make(**kw):
        kw.setdefault("payment", "credit_card")
        return make_order(shipping="logistics", **kw)
    return make


# ------------------------------------------------------------------ create shipments


def test_bulk_create_shipments_books_eligible_and_skips_others(app, staff_client, run_worker,
                                                               logistics, make_order):
    # given two bookable orders, one the carrier refuses, a delivery order, a booked one
    good = [logistics(), logistics()]
    refused = logistics(address="FAIL-CARRIER 1 號")
    delivery = make_order(payment="credit_card")
    booked = logistics()
    code = create_shipment(booked.id, actor=STAFF).tracking_code
    ids = [o.id for o in (*good, refused, delivery, booked)]
    # when staff press "Create shipments" (no htmx) and a worker runs the job
    response = staff_client.post("/papers/bulk/shipments", data={"ids": ids, "scope": "selected"})
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    job_id = job_id_from(response)
    assert run_worker()
    # then the eligible ones are booked, the rest skipped with their reasons
    job = fresh_job(job_id)
    assert job.status == "done" and job.kind == "create_shipments"
    assert job.result["done"] == 2 and job.progress == 5
    reasons = {row["number"]: row["reason"] for row in job.result["skipped"]}
    assert set(reasons) == {refused.number, delivery.number, booked.number}
    assert "refused the address" in reasons[refused.number]
    assert "logistics automation" in reasons[delivery.number]
    assert code in reasons[booked.number]
    for order in good:
        row = db.session.get(Order, order.id)
        assert row.tracking_code_by_carrier and row.tracking_code.startswith("TC")
    assert db.session.get(Order, refused.id).tracking_code == ""
    # the progress page lists the skipped orders
    page = staff_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "3 orders skipped" in page and refused.number in page
    # and a rerun books nobody twice
    job_id2 = job_id_from(staff_client.post("/papers/bulk/shipments",
                                            data={"ids": ids, "scope": "selected"}))
    run_worker()
    assert fresh_job(job_id2).result["done"] == 0
    assert db.session.scalar(select(func.count(Shipment.id))) == 3


def test_single_create_shipment_htmx_polls_then_reloads_the_order(app, staff_client,
                                                                  run_worker, logistics):
    order = logistics()
    # the order page offers it
    page = staff_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="create-shipment"' in page and "Test carrier" in page
    # when pressed (htmx), the card polls its job
    response = staff_client.post(f"/papers/orders/{order.number}/shipment",
                                 data={"weight": "1.25", "unit": "kg"}, htmx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    job_id = re.search(r"job=([0-9a-f-]{36})", html).group(1)
    assert 'hx-trigger="every 1s"' in html and "Booking with the carrier" in html
    assert run_worker()
    # then the status answer is the whole order body, the code locked
    done = staff_client.get(f"/papers/orders/{order.number}/shipment?job={job_id}", htmx=True)
    assert done.headers["HX-Retarget"] == "#order-body"
    body = done.get_data(as_text=True)
    row = db.session.get(Order, order.id)
    assert row.tracking_code in body and "Locked" in body and "Set by the carrier" in body
    assert 'data-testid="create-shipment"' not in body
    assert db.session.get(Shipment, 1).weight_grams == 1250


def test_single_create_shipment_without_htmx_goes_to_the_progress_page(app, staff_client,
                                                                      logistics):
    order = logistics()
    response = staff_client.post(f"/papers/orders/{order.number}/shipment",
                                 data={"weight": "800", "unit": "g"})
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]


@pytest.mark.parametrize("weight, unit", [("abc", "kg"), ("-1", "kg"), ("0", "g"),
                                          ("101", "kg"), ("1", "lb"), ("nan", "kg"),
                                          ("inf", "kg"), ("9" * 40, "g")])
def test_single_create_shipment_bad_weight(app, staff_client, logistics, weight, unit):
    order = logistics()
    response = staff_client.post(f"/papers/orders/{order.number}/shipment",
                                 data={"weight": weight, "unit": unit}, htmx=True)
    assert response.status_code == 422
    assert "Weight must" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_single_create_shipment_refused_for_a_delivery_order(app, staff_client, make_order):
    order = make_order(payment="credit_card")
    page = staff_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="shipment-card"' not in page
    response = staff_client.post(f"/papers/orders/{order.number}/shipment", data={}, htmx=True)
    assert response.status_code == 422
    response = staff_client.post(f"/papers/orders/{order.number}/shipment", data={})
    assert response.status_code == 302
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_status_route_ignores_someone_elses_job(app, staff_client, owner, logistics):
    from jobs.queue import enqueue_job
    from jobs.shipments import create_shipments_job

    order = logistics()
    other = enqueue_job("create_shipments", create_shipments_job, [order.id], user_id=owner.id)
    response = staff_client.get(f"/papers/orders/{order.number}/shipment?job={other.id}",
                                htmx=True)
    assert response.status_code == 200 and "Booking with the carrier" not in response.get_data(
        as_text=True)
    assert staff_client.get(f"/papers/orders/{order.number}/shipment").status_code == 302
    assert staff_client.get("/papers/orders/NOPE/shipment", htmx=True).status_code == 404


# ------------------------------------------------------------------ papers


def test_bulk_labels_skip_ineligible_orders(app, staff_client, run_worker, logistics, make_order):
    booked = [logistics(name="陳大文"), logistics(name="李小龍")]
    for order in booked:
        create_shipment(order.id, actor=STAFF)
    unbooked = logistics()
    delivery = make_order(payment="credit_card")
    ids = [booked[0].id, delivery.id, unbooked.id, booked[1].id]
    response = staff_client.post("/papers/bulk/print?kind=label", data={"ids": ids}, htmx=True)
    assert response.status_code == 200
    job_id = job_id_from(response)
    assert 'hx-trigger="every 1s"' in response.get_data(as_text=True)
    assert run_worker()
    job = fresh_job(job_id)
    assert job.status == "done", job.error
    assert job.result["done"] == 2
    assert {r["number"] for r in job.result["skipped"]} == {delivery.number, unbooked.number}
    reader = pdf_of(staff_client, job_id)
    assert len(reader.pages) == 2
    codes = [db.session.get(Order, o.id).tracking_code for o in booked]
    texts = [page.extract_text() for page in reader.pages]
    assert codes[0] in texts[0] and codes[1] in texts[1]
    page = staff_client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "2 orders skipped" in page and "Download" in page


def test_bulk_labels_with_nothing_eligible_says_why(app, staff_client, run_worker, make_order):
    order = make_order(payment="credit_card")
    job_id = job_id_from(staff_client.post("/papers/bulk/print?kind=label", data={"ids": [order.id]}))
    run_worker()
    job = fresh_job(job_id)
    assert job.status == "done" and job.result["done"] == 0 and job.result_path is None
    assert staff_client.get(f"/jobs/{job_id}/download").status_code == 404


def test_bulk_invoices_render_in_parallel_chunks_in_list_order(app, staff_client, run_worker,
                                                               make_order, make_variant):
    from jobs import papers

    variant = make_variant(stock=500)
    orders = [make_order(items=[(variant.id, 1 + n % 3)], name=f"客戶{n}") for n in range(30)]
    orders.reverse()  # the list's order, not the ids'
    assert len(orders) >= papers.PARALLEL_MIN
    job_id = job_id_from(staff_client.post("/papers/bulk/print?kind=invoice",
                                           data={"ids": [o.id for o in orders]}))
    assert run_worker()
    job = fresh_job(job_id)
    assert job.status == "done", job.error
    assert (job.progress, job.total, job.result["done"]) == (30, 30, 30)
    assert job.result_name.endswith(".pdf")
    reader = pdf_of(staff_client, job_id)
    assert len(reader.pages) >= 30
    # each order's number appears, in the list's order
    text = "\n".join(page.extract_text() for page in reader.pages)
    positions = [text.find(o.number) for o in orders]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)


def test_bulk_pick_list_for_all_matching(app, staff_client, run_worker, make_order):
    for _ in range(3):
        make_order(payment="credit_card")
    response = staff_client.post("/papers/bulk/print?kind=pick_list", data={"scope": "matching"})
    job_id = job_id_from(response)
    run_worker()
    job = fresh_job(job_id)
    assert job.status == "done", job.error
    assert job.result["done"] == 3
    assert len(pdf_of(staff_client, job_id).pages) >= 1


# ------------------------------------------------------------------ hostile input


def test_login_required(app, client, make_order):
    order = make_order()
    token = client.token_from(client.get("/login").get_data(as_text=True))
    for url in ("/papers/bulk/print?kind=invoice", "/papers/bulk/shipments",
                f"/papers/orders/{order.number}/shipment"):
        response = client.post(url, data={"ids": [order.id], "csrf_token": token}, csrf=False)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
        assert client.post(url, data={"ids": [order.id]}, csrf=False).status_code in (302, 400)
    assert client.get(f"/papers/orders/{order.number}/shipment").status_code == 302
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_csrf_required(app, staff_client, make_order):
    order = make_order()
    for url in ("/papers/bulk/print?kind=invoice", "/papers/bulk/shipments"):
        assert staff_client.post(url, data={"ids": [order.id]}, csrf=False).status_code == 400
        assert staff_client.post(url, data={"ids": [order.id]}, csrf=False,
                                 htmx=True).status_code == 400
    for htmx in (False, True):
        response = staff_client.post(f"/papers/orders/{order.number}/shipment", data={},
                                     csrf=False, htmx=htmx)
        assert response.status_code == 400
    assert db.session.scalar(select(func.count(Job.id))) == 0


@pytest.mark.parametrize("data", [
    {"ids": ["1; DROP TABLE orders"]}, {"ids": ["-1"]}, {"ids": ["1234567890"]},
    {"ids": []}, {"scope": "everything", "ids": ["1"]}, {"ids": ["1e3"]},
])
def test_crafted_selection_is_refused(app, staff_client, make_order, data):
    make_order()
    for htmx in (False, True):
        response = staff_client.post("/papers/bulk/print?kind=invoice", data=data, htmx=htmx)
        assert response.status_code == (422 if htmx else 302)
        if htmx:
            assert 'role="alert"' in response.get_data(as_text=True)
        else:
            assert "/orders" in response.headers["Location"]
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_unknown_kind_is_404(app, staff_client, make_order):
    order = make_order()
    for kind in ("receipt", "..%2Fetc", "INVOICE", ""):
        assert staff_client.post(f"/papers/bulk/print?kind={kind}",
                                 data={"ids": [order.id]}).status_code == 404


def test_ids_of_unknown_orders_are_skipped_not_crashing(app, staff_client, run_worker):
    job_id = job_id_from(staff_client.post("/papers/bulk/shipments", data={"ids": ["999999"]}))
    run_worker()
    job = fresh_job(job_id)
    assert job.status == "done" and job.result["done"] == 0
    assert job.result["skipped"][0]["number"] == "—"


def test_bulk_bar_buttons_on_the_list(app, staff_client, make_order):
    make_order()
    html = staff_client.get("/orders").get_data(as_text=True)
    for kind in ("invoice", "packing_list", "label", "pick_list"):
        assert f'formaction="/papers/bulk/print?kind={kind}"' in html
    assert 'formaction="/papers/bulk/shipments"' in html
    assert "js/papers.js" in html
    assert db.session.scalar(select(func.count(OrderEvent.id))) >= 1


def test_render_merged_in_two_processes_keeps_order_and_skips_a_vanished_chunk(
        app, make_order, make_variant, tmp_path):
    import gc

    from jobs import papers
    from jobs.queue import use_app

    use_app(app)  # the forked child takes the job app, as in a worker
    variant = make_variant(stock=500)
    orders = [make_order(items=[(variant.id, 1)], name=f"客戶{n}") for n in range(papers.CHUNK + 2)]
    # a whole chunk of ids that no longer exist, between the real ones
    ids = ([o.id for o in orders[:papers.CHUNK]] + list(range(900_000, 900_000 + papers.CHUNK))
           + [o.id for o in orders[papers.CHUNK:]])
    folder = tmp_path / "out"
    folder.mkdir()
    path = folder / "merged.pdf"
    seen = []
    pages = papers.render_merged("invoice", ids, path, workers=2, progress=seen.append)
    assert pages == len(orders)
    text = "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)
    positions = [text.find(o.number) for o in orders]
    assert all(p >= 0 for p in positions) and positions == sorted(positions)
    assert sorted(seen) == seen and seen[-1] == len(ids)  # every chunk reported, once
    assert list(folder.iterdir()) == [path]  # no part file left behind
    assert gc.get_freeze_count() == 0  # the collector is back to normal
