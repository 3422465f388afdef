"""One log line per request with a request id; the jobs it enqueues log the same id."""

from __future__ import annotations

import logging
import re

from domain.models import Job

pytest_plugins = ["jobs_fixtures"]

REQUEST_LOGGER = "shopdesk.request"


def request_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == REQUEST_LOGGER]


def field(line: str, name: str) -> str:
    match = re.search(rf"(?:^| ){name}=(\S+)", line)
    assert match, f"no {name}= in {line!r}"
    return match.group(1)


def test_a_request_logs_one_line_whose_id_is_echoed(client, caplog):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    response = client.get("/login?next=%2Forders&secret=hunter2")
    lines = request_lines(caplog)
    assert len(lines) == 1
    line = lines[0]
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert field(line, "request_id") == request_id
    assert field(line, "method") == "GET"
    assert field(line, "path") == "/login"  # no query string: no values of it either
    assert "hunter2" not in line and "next" not in line
    assert field(line, "status") == "200"
    assert float(field(line, "duration_ms")) >= 0
    assert field(line, "user") == "-"
    assert field(line, "addr") == "127.0.0.1"


def test_each_request_gets_its_own_id_and_the_signed_in_user(owner_client, owner, caplog):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    first = owner_client.get("/orders")
    second = owner_client.get("/orders")
    lines = request_lines(caplog)
    assert len(lines) == 2
    assert first.headers["X-Request-ID"] != second.headers["X-Request-ID"]
    assert [field(x, "user") for x in lines] == [str(owner.id)] * 2


def test_a_sane_id_from_nginx_is_kept_and_a_hostile_one_replaced(client, caplog):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    kept = client.get("/healthz", headers={"X-Request-ID": "0123456789abcdef0123456789abcdef"})
    assert kept.headers["X-Request-ID"] == "0123456789abcdef0123456789abcdef"
    for hostile in ("x\tuser=1 status=200", "a b", "<script>", "x" * 65, "short", "é" * 10):
        response = client.get("/healthz", headers={"X-Request-ID": hostile})
        assert response.headers["X-Request-ID"] != hostile
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert len(request_lines(caplog)) == 7
    assert all("script" not in line and "status=200 " not in line.split("path=")[0]
               for line in request_lines(caplog))


def test_customer_link_tokens_are_not_logged(client, make_order, caplog):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    order = make_order()
    response = client.get(f"/shop/o/{order.public_token}")
    assert response.status_code == 200
    (line,) = request_lines(caplog)
    assert order.public_token not in line
    assert field(line, "path") == "/shop/o/<token>"


def test_errors_are_logged_with_their_status(client, caplog):
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    client.get("/no-such-page")
    client.post("/login", data={"email": "a@b.c", "password": "x"}, csrf=False)
    statuses = [field(x, "status") for x in request_lines(caplog)]
    assert statuses == ["404", "400"]


def test_an_enqueued_job_logs_the_id_of_the_request_that_enqueued_it(
        owner_client, make_order, run_worker, caplog, monkeypatch):
    from blueprints.orders import routes

    caplog.set_level(logging.INFO)
    # given an export big enough to run as a job (the limit lowered to 0 for the test)
    monkeypatch.setattr(routes, "SYNC_LIMIT", 0)
    order = make_order()
    response = owner_client.post("/orders/export", data={"ids": [str(order.id)]})
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    request_id = response.headers["X-Request-ID"]
    caplog.clear()
    # when a real burst worker runs it
    assert run_worker()
    # then its start and end lines carry the request's id
    job_lines = [r.getMessage() for r in caplog.records if r.name == "shopdesk.jobs"]
    assert [field(x, "event") for x in job_lines] == ["start", "done"]
    assert {field(x, "request_id") for x in job_lines} == {request_id}
    job_id = field(job_lines[0], "job")
    from domain.db import db

    assert db.session.get(Job, job_id).status == "done"


def test_jobs_enqueued_outside_a_request_log_no_id(app, run_worker, caplog):
    from jobs.deadlines import enqueue_sweep

    caplog.set_level(logging.INFO)
    enqueue_sweep()
    assert run_worker()
    job_lines = [r.getMessage() for r in caplog.records if r.name == "shopdesk.jobs"]
    assert [field(x, "request_id") for x in job_lines] == ["-", "-"]
    assert "sweep_job" in job_lines[0]
