"""One log line per request, with a request id that is echoed back and handed to jobs.

The id is nginx's ``X-Request-ID`` when that is a sane token (nginx sends its
``$request_id``), otherwise a fresh random one. It goes back in the response's
``X-Request-ID`` header and into ``g.request_id``, where jobs/queue.py picks it
up for the jobs this request enqueues.

The line never holds a query string (search terms, tokens) and masks the
secret part of customer links (``/shop/o/<token>``): anyone who can read the
logs must not be able to open a customer's order page.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, request

from jobs.job_log import ensure_handler

log = logging.getLogger("shopdesk.request")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
SECRET_VIEW_ARGS = ("token",)  # path parts that act as passwords (customer links)


def _incoming_id() -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    return offered if _SANE_ID.fullmatch(offered) else uuid.uuid4().hex


def _start_request() -> None:
    g.request_id = _incoming_id()
    g.request_started = time.perf_counter()


def logged_path() -> str:
    """The path without its query string, secret segments replaced by ``<name>``."""
    path = request.path
    for name in SECRET_VIEW_ARGS:
        value = (request.view_args or {}).get(name)
        if isinstance(value, str) and value:
            path = path.replace(value, f"<{name}>")
    return path


def _user_id() -> str:
    # Only a user this request already loaded: looking one up here would add a
    # query to requests that never needed one (static files, /healthz).
    user = g.get("_login_user")
    return str(user.id) if user is not None and getattr(user, "is_authenticated", False) else "-"


def _finish_request(response):
    if "request_id" not in g:  # a before_request of someone else's answered first
        _start_request()
    response.headers[REQUEST_ID_HEADER] = g.request_id
    elapsed_ms = (time.perf_counter() - g.request_started) * 1000
    log.info("request_id=%s method=%s path=%s status=%s duration_ms=%.1f user=%s addr=%s",
             g.request_id, request.method, logged_path(), response.status_code, elapsed_ms,
             _user_id(), request.remote_addr or "-")
    return response


def init_request_log(app: Flask) -> None:
    """Log every request of ``app`` (one line, after the response is made)."""
    ensure_handler(log)
    # First of the app's before_request functions, so the clock starts before any of them.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    # Last of the after_request functions (they run in reverse), so it logs the final status.
    app.after_request_funcs.setdefault(None, []).insert(0, _finish_request)
