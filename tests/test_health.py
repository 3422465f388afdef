"""/healthz and the owner's "background jobs are not running" banner, on a real Redis."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app import create_app
from blueprints.health import WORKER_BANNER_MESSAGE
from domain.models import utcnow
from jobs import heartbeat
from jobs import queue as job_queue
from jobs.deadlines import enqueue_sweep

pytest_plugins = ["jobs_fixtures"]

BANNER = "Background jobs are not running: orders will not expire and messages will not be sent."
KEYS = {"status", "db", "redis", "worker_heartbeat_s", "outbox_oldest_pending_s"}


@pytest.fixture
def no_redis(app):
    """A REDIS_URL nobody listens on."""
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop(job_queue._EXTENSION, None)
    yield
    app.extensions.pop(job_queue._EXTENSION, None)


def test_healthz_ok_is_terse_uncached_and_needs_no_login(client, redis_conn):
    # when a monitor asks, signed out
    response = client.get("/healthz")
    # then it gets 200 and only ok/fail and ages
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == KEYS
    assert body["status"] == body["db"] == body["redis"] == "ok"
    assert body["worker_heartbeat_s"] is None  # no worker has ever run
    assert body["outbox_oldest_pending_s"] is None  # no outbox yet (issue 9)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"


def test_healthz_reports_the_age_of_the_sweep_heartbeat(client, redis_conn, run_worker):
    # given the worker ran its sweep (a real burst worker)
    enqueue_sweep()
    assert run_worker()
    # then the heartbeat is seconds old
    assert client.get("/healthz").get_json()["worker_heartbeat_s"] in (0, 1, 2)
    # and an old one reads as old
    heartbeat.beat(redis_conn, now=time.time() - 500)
    assert 499 <= client.get("/healthz").get_json()["worker_heartbeat_s"] <= 502


def test_healthz_is_503_when_redis_is_down(client, no_redis):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body == {"status": "fail", "db": "ok", "redis": "fail", "worker_heartbeat_s": None,
                    "outbox_oldest_pending_s": None}
    assert "127.0.0.1" not in response.get_data(as_text=True)  # no error details leak


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path, redis_conn, embedded_redis):
    broken = create_app({"TESTING": True, "SECRET_KEY": "x",
                         "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/missing/dir/x.db"})
    broken.extensions[job_queue._EXTENSION] = embedded_redis
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["db"] == "fail"
    assert response.get_json()["redis"] == "ok"
    assert "sqlite" not in response.get_data(as_text=True)


def test_healthz_reports_the_oldest_message_not_yet_delivered(client, redis_conn, make_order,
                                                              tmp_path):
    # given an order whose customer email has waited 2 minutes (no notification address:
    # the store gets no email of its own)
    from domain.db import db
    from domain.models import OutboxMessage

    make_order()
    db.session.query(OutboxMessage).update({"created_at": utcnow() - timedelta(seconds=120)})
    db.session.commit()
    age = client.get("/healthz").get_json()["outbox_oldest_pending_s"]
    assert 119 <= age <= 125
    # when they are delivered (copy-only mail), nothing waits any more
    from domain.notify.delivery import deliver_due
    from domain.notify.transport import MailSettings

    assert deliver_due(MailSettings(), tmp_path / "mail")["sent"] == 1
    assert client.get("/healthz").get_json()["outbox_oldest_pending_s"] is None


def test_healthz_refuses_other_methods(client, redis_conn):
    assert client.post("/healthz", csrf=False).status_code == 405


# ------------------------------------------------------------------ the banner


def test_banner_shows_to_the_owner_when_no_worker_ever_ran(owner_client, redis_conn):
    html = owner_client.get("/orders").get_data(as_text=True)
    assert BANNER in html
    assert WORKER_BANNER_MESSAGE == BANNER


def test_banner_shows_to_the_owner_when_the_heartbeat_is_stale(owner_client, redis_conn):
    heartbeat.beat(redis_conn, now=time.time() - 181)
    assert BANNER in owner_client.get("/orders").get_data(as_text=True)


def test_no_banner_when_the_sweep_just_ran(owner_client, redis_conn, run_worker):
    enqueue_sweep()
    assert run_worker()
    assert BANNER not in owner_client.get("/orders").get_data(as_text=True)
    # still fresh just under three minutes
    heartbeat.beat(redis_conn, now=time.time() - 170)
    assert BANNER not in owner_client.get("/review/").get_data(as_text=True)


def test_no_banner_for_staff(staff_client, redis_conn):
    heartbeat.beat(redis_conn, now=time.time() - 3600)
    html = staff_client.get("/orders").get_data(as_text=True)
    assert BANNER not in html


def test_no_banner_in_htmx_fragments_or_on_the_shop(owner_client, redis_conn):
    # the fragment swaps into a page that already has (or has not) the banner
    assert BANNER not in owner_client.get("/orders", htmx=True).get_data(as_text=True)
    # customers' pages never show it, even to a signed-in owner
    assert BANNER not in owner_client.get("/shop/").get_data(as_text=True)


def test_banner_reads_redis_once_per_page(owner_client, redis_conn, monkeypatch):
    calls = []
    real = heartbeat.age_seconds
    monkeypatch.setattr(heartbeat, "age_seconds", lambda conn: calls.append(1) or real(conn))
    owner_client.get("/orders")
    assert calls == [1]


def test_banner_shows_when_redis_is_down(owner_client, no_redis):
    # no Redis: no job can run either
    assert BANNER in owner_client.get("/orders").get_data(as_text=True)
