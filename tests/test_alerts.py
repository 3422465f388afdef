"""Live alerts in the desk (issue 9): the bell's rows and counts, the views (with and
without htmx, CSRF, other people's ids), the polling fragment, and the event stream
itself over real HTTP (werkzeug in a thread) woken by real Redis pub/sub."""

from __future__ import annotations

import http.client
import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import Client

from domain.actors import Actor
from domain.db import db
from domain.models import DeskNotification, utcnow
from domain.notify import alerts
from domain.orders import confirm_payment, upload_proof

pytest_plugins = ["jobs_fixtures"]

ROOT = Path(__file__).resolve().parent.parent


def rows(user) -> list[DeskNotification]:
    db.session.rollback()
    return list(db.session.query(DeskNotification).filter_by(user_id=user.id)
                .order_by(DeskNotification.id))


def proof(order):
    return upload_proof(order.id, path=f"proofs/{order.number}.png", sha256="ab" * 32)


# ------------------------------------------------------------------ the domain


def test_counts_follow_new_orders_and_proofs(app, owner, staff, make_order):
    first = make_order(name="陳大文")
    make_order(name="Amy Wong")
    assert alerts.counts(staff.id) == alerts.DeskCounts(new_orders=2, to_confirm=0, unread=2,
                                                        todo=0)
    proof(first)
    counts = alerts.counts(staff.id)
    assert (counts.new_orders, counts.to_confirm, counts.unread) == (2, 1, 3)
    # Opening the order reads its entries: its "new order" no longer counts.
    assert alerts.mark_order_read(staff.id, first.id) == 2
    # The proof to confirm is also To do (issue 16: the nav counts are the tabs' counts).
    assert alerts.counts(staff.id) == alerts.DeskCounts(new_orders=1, to_confirm=1, unread=1,
                                                        todo=1)
    # Per person: the owner's bell is untouched.
    assert alerts.counts(owner.id).unread == 3
    assert counts.signature == "2.1.3.1"


def test_own_actions_are_not_news(app, owner, staff, make_order):
    order = make_order()
    proof(order)
    confirm_payment(order.id, actor=Actor.staff(staff))
    assert [r.kind for r in rows(owner)] == ["order_placed", "proof_uploaded", "payment_confirmed"]
    assert [r.kind for r in rows(staff)] == ["order_placed", "proof_uploaded"]


def test_update_since_is_none_when_nothing_changed(app, staff, make_order):
    make_order()
    latest = alerts.latest_id(staff.id)
    signature = alerts.counts(staff.id).signature
    assert alerts.update_since(staff.id, latest, signature) is None
    # Counts that moved (here: read in another tab) are news even without a new row.
    alerts.mark_read(staff.id)
    update = alerts.update_since(staff.id, latest, signature)
    assert update is not None and update.new == [] and update.toasts == []
    assert update.counts.unread == 0 and update.latest_id == latest


def test_toasts_are_recent_new_orders_and_proofs_only(app, owner, staff, make_order):
    before = alerts.latest_id(staff.id)
    old = make_order(name="Old news")
    db.session.query(DeskNotification).filter_by(order_id=old.id).update(
        {"created_at": utcnow() - timedelta(hours=1)})
    db.session.commit()
    fresh = [make_order(name=f"Customer {i}") for i in range(4)]
    proof(fresh[0])
    confirm_payment(fresh[0].id, actor=Actor.staff(owner))  # news for the bell, not a toast
    update = alerts.update_since(staff.id, before)
    assert len(update.new) == 7
    assert update.latest_id == alerts.latest_id(staff.id)
    # At most three, oldest first, none from an hour ago, no "payment confirmed".
    assert [(n.kind, o.customer_name) for n, o in update.toasts] == [
        ("order_placed", "Customer 2"), ("order_placed", "Customer 3"), ("proof_uploaded", "Customer 0")]


def test_mark_all_read_keeps_what_came_later(app, staff, make_order):
    make_order()
    seen = alerts.latest_id(staff.id)
    make_order()
    assert alerts.mark_read_upto(staff.id, seen) == 1
    assert [r.read_at is None for r in rows(staff)] == [False, True]


def test_open_notification_is_per_user(app, owner, staff, make_order):
    order = make_order()
    proof(order)
    theirs = rows(owner)[0]
    assert alerts.open_notification(staff.id, theirs.id) is None
    assert all(r.read_at is None for r in rows(owner))
    mine = rows(staff)[0]
    assert alerts.open_notification(staff.id, mine.id).id == order.id
    assert all(r.read_at is not None for r in rows(staff))  # both entries of that order
    assert all(r.read_at is None for r in rows(owner))


# ------------------------------------------------------------------ the pages


def test_bell_and_counts_on_desk_pages(app, staff, staff_client, make_order):
    order = make_order(name="<script>alert(1)</script>")
    proof(order)
    html = staff_client.get("/orders").get_data(as_text=True)
    badge = re.search(r'id="badge-orders" data-count="(\d+)"', html)
    review = re.search(r'id="badge-review" data-count="(\d+)"', html)
    bell = re.search(r'id="bell-count" data-count="(\d+)"', html)
    assert (badge.group(1), review.group(1), bell.group(1)) == ("1", "1", "2")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'src="/static/js/alerts.js' in html and 'src="/static/vendor/htmx-ext-sse.js' in html
    assert f'name="after" value="{alerts.latest_id(staff.id)}"' in html
    # The review queue's page shows the same counts.
    assert 'id="badge-review" data-count="1"' in staff_client.get("/review/").get_data(as_text=True)


def test_customer_pages_have_no_desk_alerts(app, staff_client, make_order):
    order = make_order()
    for url in ("/shop/", f"/shop/order/{order.public_token}"):
        response = staff_client.get(url)
        html = response.get_data(as_text=True)
        assert response.status_code in (200, 404), url
        assert "alerts.js" not in html and 'id="alerts-live"' not in html, url


def test_notifications_page_with_and_without_htmx(app, client, staff_client, make_order):
    assert client.get("/alerts/").status_code == 302  # sign in first
    make_order(name="Amy <b>Wong</b>")
    page = staff_client.get("/alerts/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert "Amy &lt;b&gt;Wong&lt;/b&gt;" in html and "New order" in html
    assert html.count('id="bell-list"') == 1  # no second list in the nav's panel here
    fragment = staff_client.get("/alerts/", htmx=True).get_data(as_text=True)
    assert "<html" not in fragment and 'id="bell-list"' in fragment


def test_open_marks_read_and_goes_to_the_order(app, owner, staff, staff_client, make_order):
    order = make_order()
    mine, theirs = rows(staff)[0], rows(owner)[0]
    assert staff_client.post("/alerts/open", {"id": mine.id}, csrf=False).status_code == 400
    for hostile in (theirs.id, 999999, "abc", "-1", "1 OR 1=1", ""):
        assert staff_client.post("/alerts/open", {"id": hostile}).status_code == 404, hostile
    assert rows(owner)[0].read_at is None
    response = staff_client.post("/alerts/open", {"id": mine.id})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/orders/{order.number}")
    assert rows(staff)[0].read_at is not None
    assert Client(staff_client.app).post("/alerts/open", {"id": mine.id}, csrf=False).status_code in (302, 400)


def test_read_all(app, owner, staff, staff_client, make_order):
    make_order()
    seen = alerts.latest_id(staff.id)
    make_order()
    assert staff_client.post("/alerts/read-all", {"upto": seen}, csrf=False).status_code == 400
    assert staff_client.post("/alerts/read-all", {"upto": "x"}).status_code == 400
    response = staff_client.post("/alerts/read-all", {"upto": seen}, htmx=True)
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="bell-count" data-count="1" hx-swap-oob="true"' in fragment
    assert 'id="alerts-state"' not in fragment  # the page keeps its own "seen up to"
    assert [r.read_at is None for r in rows(staff)] == [False, True]
    assert all(r.read_at is None for r in rows(owner))  # someone else's bell stays
    plain = staff_client.post("/alerts/read-all", {"upto": alerts.latest_id(staff.id)})
    assert plain.status_code == 303 and plain.headers["Location"].endswith("/alerts/")
    assert all(r.read_at is not None for r in rows(staff))


def test_poll(app, client, owner, staff, staff_client, make_order):
    assert client.get("/alerts/poll?after=0", htmx=True).status_code == 401
    make_order()  # before the page: not a toast for it
    after, sig = alerts.latest_id(staff.id), alerts.counts(staff.id).signature
    assert staff_client.get(f"/alerts/poll?after={after}&sig={sig}", htmx=True).status_code == 204
    order = make_order(name='陳"大文" <img src=x>')
    response = staff_client.get(f"/alerts/poll?after={after}&sig={sig}", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.count('class="toast ') == 1 and f'data-testid="toast-{order.number}"' in html
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html
    assert 'data-body="陳&#34;大文&#34; &lt;img src=x&gt; · HK$' in html  # text for the notification
    assert f'name="after" value="{alerts.latest_id(staff.id)}"' in html
    # Bogus "after": starts from now, so no pile of old toasts.
    assert 'class="toast ' not in staff_client.get("/alerts/poll?after=zz", htmx=True).get_data(as_text=True)
    # The staff member's own action is news for the owner only; nobody sees another's rows.
    proof(order)
    confirm_payment(order.id, actor=Actor.staff(staff))
    staff_view = staff_client.get("/alerts/poll?after=0", htmx=True).get_data(as_text=True)
    assert "Payment confirmed" not in staff_view
    assert all(f'data-testid="bell-{r.id}"' not in staff_view for r in rows(owner))
    assert all(f'data-testid="bell-{r.id}"' in staff_view for r in rows(staff))


def test_templates_render_the_chinese_labels(app, staff, staff_client, make_order):
    staff.locale = "zh_Hant_HK"
    db.session.commit()
    make_order()
    html = staff_client.get("/alerts/").get_data(as_text=True)
    assert "通知" in html and "新訂單" in html


def test_sse_message_format():
    from blueprints.alerts.routes import sse_message

    text = sse_message("alert", "<p>a</p>\r\n<p>b\rc</p>\n", 7)
    assert text == "event: alert\nid: 7\ndata: <p>a</p>\ndata: <p>b\ndata: c</p>\ndata: \n\n"


def test_chime_is_our_own_generated_file():
    from blueprints.alerts.chime import chime_wav

    committed = ROOT / "static" / "sounds" / "alert.wav"
    assert committed.read_bytes() == chime_wav()
    assert committed.stat().st_size < 20_000


def test_gunicorn_uses_threads_for_long_lived_streams():
    unit = (ROOT / "deploy" / "shopdesk-web.service").read_text()
    exec_line = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "--worker-class gthread" in exec_line and re.search(r"--threads \d+", exec_line)
    assert "--workers 3" in exec_line
    nginx = (ROOT / "deploy" / "nginx.conf.sample").read_text()
    events = nginx[nginx.index("location /events"):]
    events = events[:events.index("}")]
    assert "proxy_buffering off" in events and "proxy_read_timeout" in events


# ------------------------------------------------------------------ the event stream, over HTTP


def cookie_header(client: Client) -> str:
    jar = client.http._http._cookies
    return "; ".join(f"{cookie.key}={cookie.value}" for cookie in jar.values())


class Stream:
    """A real HTTP connection to the live server's /events, read message by message."""

    def __init__(self, base: str, cookie: str = "", path: str = "/events", headers=None):
        url = urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", "Cookie": cookie,
                                                **(headers or {})})
        self.sock = self.conn.sock  # http.client drops its reference once the response is read
        self.response = self.conn.getresponse()
        self.ended = False

    def message(self, timeout: float) -> dict | None:
        """The next message or comment block; None at the end of the stream."""
        self.sock.settimeout(timeout)
        fields: dict = {"comments": [], "data": []}
        while True:
            line = self.response.readline()
            if not line:
                self.ended = True
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                fields["data"] = "\n".join(fields["data"])
                return fields
            if line.startswith(":"):
                fields["comments"].append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    fields["data"].append(value)
                else:
                    fields[name] = value

    def wait_for_event(self, name: str, within: float) -> dict:
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            message = self.message(left)
            if message is None:
                break
            if message.get("event") == name:
                return message
        raise AssertionError(f"no {name!r} event within {within} s")

    def close(self):
        self.response.close()
        self.sock.close()


@pytest.fixture
def stream_config(app):
    app.config.update(ALERTS_STREAM_SECONDS=20, ALERTS_CHECK_SECONDS=20, ALERTS_KEEPALIVE_SECONDS=20)
    return app.config


def test_events_require_login_and_an_event_stream_client(app, live_server, staff):
    stream = Stream(live_server)
    assert stream.response.status == 401
    stream.close()
    # A plain GET (not EventSource) is told what this is instead of hanging for a minute.
    plain = Stream(live_server, cookie_header(Client(app).login(staff)), headers={"Accept": "*/*"})
    assert plain.response.status == 406
    plain.close()


def test_a_publish_wakes_the_stream_at_once(app, live_server, redis_conn, staff, stream_config,
                                            make_order):
    app.config["NOTIFY_DISPATCH"] = True  # commits publish on Redis
    client = Client(app).login(staff)
    after = alerts.latest_id(staff.id)
    sig = alerts.counts(staff.id).signature
    stream = Stream(live_server, cookie_header(client), f"/events?after={after}&sig={sig}")
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Content-Type").startswith("text/event-stream")
        assert stream.response.getheader("X-Accel-Buffering") == "no"
        hello = stream.message(5)
        assert "connected" in hello["comments"] and hello.get("retry") == "2000"
        time.sleep(0.3)  # the stream is waiting on Redis now (its own check is 20 s away)
        started = time.monotonic()
        order = make_order(name="Amy <Wong>")
        event = stream.wait_for_event("alert", within=5)
        assert time.monotonic() - started < 3, "the publish should wake the stream at once"
        assert int(event["id"]) == alerts.latest_id(staff.id)
        assert f'data-testid="toast-{order.number}"' in event["data"]
        assert "Amy &lt;Wong&gt;" in event["data"] and "<Wong>" not in event["data"]
        assert 'id="badge-orders" data-count="1" hx-swap-oob="true"' in event["data"]
    finally:
        stream.close()


def test_a_lost_publish_is_still_delivered(app, live_server, redis_conn, staff, stream_config,
                                          make_order):
    app.config.update(NOTIFY_DISPATCH=False, ALERTS_CHECK_SECONDS=0.5)  # no Redis publish at all
    client = Client(app).login(staff)
    stream = Stream(live_server, cookie_header(client), f"/events?after={alerts.latest_id(staff.id)}"
                    f"&sig={alerts.counts(staff.id).signature}")
    try:
        stream.message(5)
        order = make_order()
        event = stream.wait_for_event("alert", within=4)
        assert f'data-testid="toast-{order.number}"' in event["data"]
    finally:
        stream.close()


def test_stream_ends_after_its_time_with_keepalives(app, live_server, redis_conn, staff,
                                                   stream_config):
    app.config.update(ALERTS_STREAM_SECONDS=1.5, ALERTS_CHECK_SECONDS=0.2,
                      ALERTS_KEEPALIVE_SECONDS=0.4)
    client = Client(app).login(staff)
    started = time.monotonic()
    stream = Stream(live_server, cookie_header(client),
                    f"/events?after=0&sig={alerts.counts(staff.id).signature}")
    comments = []
    try:
        while (message := stream.message(5)) is not None:
            comments += message["comments"]
            assert message.get("event") is None  # nothing new, same counts: no update
        assert stream.ended and time.monotonic() - started < 4
        assert "keep-alive" in comments
    finally:
        stream.close()


def test_reconnect_with_last_event_id_sends_no_old_toasts(app, live_server, redis_conn, staff,
                                                          stream_config, make_order):
    app.config.update(ALERTS_CHECK_SECONDS=0.3)
    make_order()
    client = Client(app).login(staff)
    # The URL still says after=0 (as when the page opened); the browser's
    # Last-Event-ID says what it has seen since.
    stream = Stream(live_server, cookie_header(client), "/events?after=0&sig=stale",
                    headers={"Last-Event-ID": str(alerts.latest_id(staff.id))})
    try:
        event = stream.wait_for_event("alert", within=4)  # the counts differ from "stale"
        assert 'class="toast ' not in event["data"]
        assert 'id="bell-count" data-count="1"' in event["data"]
    finally:
        stream.close()
