"""Health: ``GET /healthz`` for monitors, and the owner's "jobs are not running" banner.

``/healthz`` is unauthenticated, so it says only ok/fail per dependency and two
ages in seconds: no versions, no error texts, no counts. 200 when the database
and Redis answer, 503 otherwise. The worker's age is reported but does not
fail the check (a monitor decides how old is too old; the desk's banner uses
three minutes).

The outbox age is that of the oldest message not yet delivered (pending,
failed and waiting for a retry, or being sent); null when every message is out.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, g, jsonify, request
from flask_login import current_user
from sqlalchemy import text

from domain.db import db
from domain.i18n import N_
from domain.models import utcnow
from domain.notify import outbox
from jobs import heartbeat
from jobs.queue import get_redis

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


# A message id: translated when the banner is drawn (templates/_worker_banner.html).
WORKER_BANNER_MESSAGE = N_("Background jobs are not running: orders will not expire "
                           "and messages will not be sent.")


def _check_database() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("healthz: the database did not answer", exc_info=True)
        db.session.rollback()
        return False


def _worker_age() -> tuple[bool, float | None]:
    """(Redis answered, seconds since the worker's last heartbeat)."""
    try:
        conn = get_redis()
        conn.ping()
        return True, heartbeat.age_seconds(conn)
    except Exception:
        log.warning("healthz: Redis did not answer", exc_info=True)
        return False, None


def oldest_pending_outbox_age() -> float | None:
    """Age in seconds of the oldest outbox row not yet delivered (None: nothing waiting)."""
    created = outbox.oldest_pending_created_at()
    if created is None:
        return None
    return max(0.0, (utcnow() - created).total_seconds())


def _rounded(age: float | None) -> int | None:
    return None if age is None else int(age)


@bp.get("/healthz")
def healthz():
    """Terse health for monitors: db, redis, worker heartbeat age, oldest pending outbox age."""
    db_ok = _check_database()
    redis_ok, worker_age = _worker_age()
    outbox_age = None
    if db_ok:
        try:
            outbox_age = oldest_pending_outbox_age()
        except Exception:
            log.warning("healthz: could not read the outbox", exc_info=True)
            db.session.rollback()
    ok = db_ok and redis_ok
    response = jsonify(status="ok" if ok else "fail", db="ok" if db_ok else "fail",
                       redis="ok" if redis_ok else "fail",
                       worker_heartbeat_s=_rounded(worker_age),
                       outbox_oldest_pending_s=_rounded(outbox_age))
    response.status_code = 200 if ok else 503
    response.headers["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------ the owner's banner


def worker_stalled() -> bool:
    """True when the owner should see the banner; one Redis GET, at most once per request."""
    if "worker_stalled" not in g:
        stalled = False
        # The desk only: customers' pages never show it, even to a signed-in owner.
        if (request.blueprint != "storefront" and current_user.is_authenticated
                and getattr(current_user, "is_owner", False)):
            try:
                stalled = heartbeat.is_stale(heartbeat.age_seconds(get_redis()))
            except Exception:  # Redis down: then no job runs either
                log.warning("Could not read the worker heartbeat", exc_info=True)
                stalled = True
        g.worker_stalled = stalled
    return g.worker_stalled


def init_health(app: Flask) -> None:
    """Register /healthz and the banner's template helpers."""
    app.register_blueprint(bp)
    csrf = app.extensions.get("csrf")
    if csrf is not None:  # GET only, but a monitor never has a token: say so explicitly
        csrf.exempt(bp)

    @app.context_processor
    def worker_banner_context():
        # A function, not a value: only full pages that include the banner pay the Redis GET.
        return {"worker_stalled": worker_stalled, "worker_banner_message": WORKER_BANNER_MESSAGE}
