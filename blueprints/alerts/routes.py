"""Live alerts in the desk: server-sent events, the polling fallback, the bell.

Every open desk page keeps one server-sent event stream (``GET /events``, through
the htmx SSE extension; static/js/alerts.js sets it up) or, where EventSource is
missing or keeps failing, polls ``GET /alerts/poll`` every few seconds. Both answer
with the same fragment (templates/alerts/live.html): out-of-band swaps of the nav
counts, the bell's list, new toasts and the page's "seen up to" state.

The news always comes from the database (domain.notify.alerts.update_since).
Redis pub/sub (jobs.outbox publishes on ALERTS_CHANNEL after each commit that
wrote bell entries) only wakes the streams early, so it works across gunicorn
workers; a stream also checks every few seconds by itself, so a lost publish
(Redis down, a worker restart) delays an alert by seconds, never loses it.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from typing import NamedTuple

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError

from blueprints.rendering import is_htmx, render
from domain.db import db
from domain.notify import alerts

log = logging.getLogger(__name__)

bp = Blueprint("alerts", __name__)

# Seconds. The stream ends after STREAM_SECONDS and the browser reconnects (sending
# Last-Event-ID), so no request runs for ever and a signed-out session is noticed.
STREAM_SECONDS = 60
CHECK_SECONDS = 3  # database check at least this often, publish or not
KEEPALIVE_SECONDS = 15  # a comment line: proxies keep the stream, dead clients are noticed
RETRY_MS = 2000  # how soon the browser reconnects after a stream ends
POLL_SECONDS = 3  # the fallback's interval (templates/base.html hands it to alerts.js)

_NUMBER = re.compile(r"\d{1,15}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the only line ends of the event-stream format
# Set when gunicorn tells this worker to stop: open streams end at their next check.
_stopping = threading.Event()


@bp.record_once
def _end_streams_on_shutdown(_state) -> None:
    """Under gunicorn, end the open streams when the worker is asked to stop.

    A graceful stop (SIGTERM: systemctl restart, a deploy) waits for running requests,
    and every open desk page is one, for up to a minute: the restart would hang for
    gunicorn's whole graceful timeout. gunicorn sets its handler before it loads the
    app, in the worker's main thread, where this runs; it is kept and called after ours.
    Anywhere else (tests, the development server, the CLI) nothing is changed.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    owner = getattr(previous, "__self__", None)
    if owner is None or not type(owner).__module__.startswith("gunicorn."):
        return

    def stop_streams(signum, frame):
        _stopping.set()
        previous(signum, frame)

    signal.signal(signal.SIGTERM, stop_streams)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn had it: system calls restart


class MarkAllForm(FlaskForm):
    """CSRF only: the ``upto`` id comes as a plain field."""


class OpenForm(FlaskForm):
    """CSRF only: the notification id comes as the pressed button's value."""


def _number(value: str | None) -> int | None:
    if value is None or not _NUMBER.fullmatch(value.strip()):
        return None
    return int(value)


def _setting(name: str, default: float) -> float:
    return float(current_app.config.get(name, default))


class DeskState(NamedTuple):
    counts: alerts.DeskCounts
    latest_id: int


def desk_alerts() -> DeskState | None:
    """The nav counts and the bell for the signed-in staff member (base.html), once per
    request. None on customer pages and when it cannot be read: the page still shows."""
    if not current_user.is_authenticated or request.path.startswith("/shop") \
            or request.blueprint == "storefront":
        return None
    if "desk_alerts" not in g:
        try:
            user_id = current_user.id
            # The bell's list itself is fetched when the panel first opens (base.html).
            g.desk_alerts = DeskState(*alerts.counts_and_latest(user_id))
        except SQLAlchemyError:
            db.session.rollback()
            log.warning("Could not read the desk's notifications", exc_info=True)
            g.desk_alerts = None
    return g.desk_alerts


@bp.app_context_processor
def _alerts_context():
    return {"desk_alerts": desk_alerts, "alerts_poll_seconds": POLL_SECONDS,
            "alert_event_labels": alerts.EVENT_LABELS}


@bp.app_template_filter("alert_ago")
def alert_ago(value):
    """'just now' for the first minute (Babel would say 'in 0 seconds'), then '3 minutes ago'."""
    from datetime import timedelta

    from flask_babel import gettext as _

    from blueprints.i18n import ago
    from domain.models import utcnow

    if value is not None and utcnow() - value < timedelta(seconds=60):
        return _("just now")
    return ago(value)


# ------------------------------------------------------------------ the bell


@bp.get("/alerts/")
@login_required
def index():
    """Every recent notification of mine (the bell's list; a page of its own without script)."""
    return render("alerts/index.html", block="bell_list",
                  recent=alerts.notifications(current_user.id))


@bp.post("/alerts/open")
@login_required
def open_notification():
    """Open one entry: it (and the rest of its order's) is read, then the order page."""
    if not OpenForm().validate_on_submit():
        abort(400)
    notification_id = _number(request.form.get("id"))
    order = alerts.open_notification(current_user.id, notification_id) if notification_id else None
    if order is None:
        abort(404)  # someone else's entry reads exactly like a missing one
    return redirect(url_for("orders.detail", number=order.number), code=303)


@bp.post("/alerts/read-all")
@login_required
def read_all():
    """Mark everything read that the list showed (up to ``upto``); newer entries stay unread."""
    if not MarkAllForm().validate_on_submit():
        abort(400)
    upto = _number(request.form.get("upto"))
    if upto is None:
        abort(400)
    alerts.mark_read_upto(current_user.id, upto)
    if is_htmx():
        user_id = current_user.id
        update = alerts.update_since(user_id, alerts.latest_id(user_id))
        # No page state in this answer: the page keeps its own "seen up to" id, so a
        # toast that is on its way still arrives.
        return render_template("alerts/live.html", update=update, with_state=False)
    # Without script the list is only on the Notifications page: back to it.
    return redirect(url_for("alerts.index"), code=303)


# ------------------------------------------------------------------ live updates


def _signed_in_or_401():
    if not current_user.is_authenticated:
        # Not the login redirect: EventSource and the poller cannot use a login page.
        abort(Response("Sign in first.\n", status=401, mimetype="text/plain"))


def _after_from_request(user_id: int) -> int:
    """The newest entry the page has seen: the larger of its ?after= and the stream's
    Last-Event-ID. A page that sends nothing usable starts from now (no old toasts)."""
    seen = [n for n in (_number(request.args.get("after")),
                        _number(request.headers.get("Last-Event-ID"))) if n is not None]
    return max(seen) if seen else alerts.latest_id(user_id)


@bp.get("/alerts/poll")
def poll():
    """The polling fallback: the live fragment when something changed, else 204."""
    _signed_in_or_401()
    user_id = current_user.id
    update = alerts.update_since(user_id, _after_from_request(user_id),
                                 request.args.get("sig", "")[:40])
    if update is None:
        return Response(status=204)
    return render_template("alerts/live.html", update=update, with_state=True)


def sse_message(event: str, html: str, event_id: int) -> str:
    """One event-stream message; every line of the HTML gets its own data: field."""
    lines = [f"event: {event}", f"id: {event_id}"]
    lines += [f"data: {line}" for line in _LINE_BREAK.split(html)]
    return "\n".join(lines) + "\n\n"


class _Wakeup:
    """Waits for a publish on ALERTS_CHANNEL, or the timeout. Without Redis it just sleeps."""

    def __init__(self):
        self.pubsub = None
        try:
            from jobs.outbox import ALERTS_CHANNEL
            from jobs.queue import get_redis

            pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(ALERTS_CHANNEL)
            self.pubsub = pubsub
        except Exception:
            log.warning("Live alerts without Redis: checking every few seconds", exc_info=True)

    def wait(self, timeout: float) -> None:
        if timeout <= 0:
            return
        if self.pubsub is None:
            time.sleep(timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                if self.pubsub.get_message(timeout=left) is not None:
                    # A burst of orders is many publishes: one check answers them all.
                    while self.pubsub.get_message(timeout=0) is not None:
                        pass
                    return
        except Exception:
            log.warning("Redis went away during a live stream; checking every few seconds",
                        exc_info=True)
            self.close()
            time.sleep(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except Exception:
                pass
            self.pubsub = None


@bp.get("/events")
def events():
    """Server-sent events for one open desk page (nginx: location /events, unbuffered)."""
    _signed_in_or_401()
    if "text/event-stream" not in request.headers.get("Accept", ""):
        # EventSource always asks for the stream; anything else would hang for a minute.
        return Response("This is an event stream for the desk's live alerts.\n", status=406,
                        mimetype="text/plain")
    user_id = current_user.id
    after = _after_from_request(user_id)
    signature = request.args.get("sig", "")[:40]
    length = _setting("ALERTS_STREAM_SECONDS", STREAM_SECONDS)
    check = _setting("ALERTS_CHECK_SECONDS", CHECK_SECONDS)
    keepalive = _setting("ALERTS_KEEPALIVE_SECONDS", KEEPALIVE_SECONDS)
    db.session.close()  # hold no connection (nor SQLite snapshot) between checks

    def stream():
        nonlocal after, signature
        wakeup = _Wakeup()  # subscribed before the first check: nothing falls in between
        try:
            yield f"retry: {RETRY_MS}\n: connected\n\n"
            started = last_sent = time.monotonic()
            while True:
                try:
                    update = alerts.update_since(user_id, after, signature)
                    if update is not None:
                        after, signature = update.latest_id, update.counts.signature
                        html = render_template("alerts/live.html", update=update, with_state=True)
                        yield sse_message("alert", html, after)
                        last_sent = time.monotonic()
                finally:
                    db.session.close()
                now = time.monotonic()
                if now - started >= length or _stopping.is_set():
                    return
                if now - last_sent >= keepalive:
                    yield ": keep-alive\n\n"
                    last_sent = now
                wakeup.wait(min(check, length - (now - started), keepalive))
        finally:
            wakeup.close()

    response = Response(stream_with_context(stream()), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "private, no-cache"  # see blueprints/security.py
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
