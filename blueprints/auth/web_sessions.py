"""Cookies <-> server-side sessions (domain/sessions.py), wired into Flask-Login.

Flask-Login's own remember cookie (user id + HMAC, the same on every sign-in
and never revocable) is not used: login_user is never called with
remember=True. Instead the Flask session carries "<id>.<secret>" of a
UserSession row, which the user loader checks on every request, and "Keep me
signed in" sets our own remember cookie pointing at the same row.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, current_app, g, request, session
from flask_login import LoginManager, login_user

from domain import sessions
from domain.db import db
from domain.models import User, UserSession

log = logging.getLogger(__name__)

SESSION_KEY = "sid"
REMEMBER_COOKIE = "shopdesk_remember"
# Flask-Login's cookie from before revocable sessions: removed when seen.
LEGACY_REMEMBER_COOKIE = "remember_token"
CSRF_SESSION_KEY = "csrf_token"


def client_address() -> str:
    return (request.remote_addr or "")[:45]


def current_record() -> UserSession | None:
    """This request's live session record (cached for the request)."""
    if "_user_session" not in g:
        g._user_session = sessions.resolve(session.get(SESSION_KEY), address=client_address())
    return g._user_session


def rotate_csrf() -> None:
    """A new CSRF token for a new sign-in: one minted before it stops working."""
    session.pop(CSRF_SESSION_KEY, None)
    g.pop(CSRF_SESSION_KEY, None)  # Flask-WTF caches the request's token on g


def sign_in(user: User, started: sessions.Started) -> None:
    """Put a started session into this request's cookies."""
    login_user(user, remember=False, fresh=True)
    session[SESSION_KEY] = started.session_value
    rotate_csrf()
    g._user_session = db.session.get(UserSession, started.record_id)
    g._set_remember = started if started.remember_value else None
    if started.remember_value is None:
        g._forget_remember = True


def forget_this_device() -> None:
    """After the record is gone: drop the cookies' pointers to it."""
    session.pop(SESSION_KEY, None)
    rotate_csrf()
    g._user_session = None
    g._forget_remember = True


def _load_user(user_id: str):
    record = current_record()
    if record is None or str(record.user_id) != str(user_id):
        return None
    user = record.user  # loaded with the record (sessions.resolve)
    return user if user is not None and user.active else None


def _restore_remembered():
    """A remember cookie and no live session: sign the device back in, rotating
    the token (domain/sessions.py ends the session if an old token returns)."""
    value = request.cookies.get(REMEMBER_COOKIE)
    if not value or request.endpoint == "static":
        return
    record = current_record()
    if record is not None and session.get("_user_id") == str(record.user_id):
        return
    started = sessions.restore_session(value, user_agent=request.headers.get("User-Agent", ""),
                                       address=client_address())
    user = db.session.get(User, started.user_id) if started else None
    if started is None or user is None or not user.active:
        g._forget_remember = True
        return
    sign_in(user, started)
    session["_fresh"] = False  # restored, not typed: Flask-Login's "fresh" is for passwords


def _write_cookies(response):
    started = g.get("_set_remember")
    secure = _secure()
    if started is not None:
        response.set_cookie(REMEMBER_COOKIE, started.remember_value, expires=started.expires_at,
                            httponly=True, secure=secure, samesite="Lax")
    elif g.get("_forget_remember") and REMEMBER_COOKIE in request.cookies:
        response.delete_cookie(REMEMBER_COOKIE, httponly=True, secure=secure, samesite="Lax")
    if LEGACY_REMEMBER_COOKIE in request.cookies:
        response.delete_cookie(LEGACY_REMEMBER_COOKIE)
    return response


def _secure() -> bool:
    # The remember cookie is as secret as the session cookie: same Secure flag.
    return bool(current_app.config.get("SESSION_COOKIE_SECURE"))


def register_session_loading(app: Flask, login_manager: LoginManager) -> None:
    """The user loader checks the server-side record; remember cookies restore it."""
    login_manager.user_loader(_load_user)
    app.before_request(_restore_remembered)
    app.after_request(_write_cookies)


def register_proxy_warning(app: Flask) -> None:
    """Warn once when requests arrive through a proxy the app was not told about:
    every client then shares the proxy's address, for the throttle and the
    devices list alike."""
    proxies = int(app.config.get("SHOPDESK_PROXY_COUNT")
                  or os.environ.get("SHOPDESK_PROXY_COUNT", "0") or 0)
    if proxies:
        return
    state = {"warned": False}

    @app.before_request
    def _warn_unconfigured_proxy():
        if state["warned"] or "X-Forwarded-For" not in request.headers:
            return
        state["warned"] = True
        app.logger.warning(
            "Requests carry X-Forwarded-For but SHOPDESK_PROXY_COUNT is 0: every client "
            "looks like the proxy at %s. Set SHOPDESK_PROXY_COUNT to the number of "
            "reverse proxies in front of Shopdesk.", request.remote_addr)
