"""Signed-in devices: server-side session records that can be ended.

Signing in creates a ``UserSession`` row. The Flask session cookie carries
"<id>.<secret>" and, with "Keep me signed in", a separate remember cookie
carries "<id>.<token>". The table stores only SHA-256 hashes of the secret and
the token, so a copy of the database signs nobody in. Every request checks
that its row is still there and unexpired; deleting the row (sign out, sign
out everywhere, a password change, deactivation) signs that device out,
remember cookie included, because both cookies point at the same row.

A remember token is used once: restoring a session rotates both the token and
the session secret. The token before the last rotation is kept as a hash; if
it comes back after a short grace period, someone holds a copy of an old
cookie, and the session is ended (theft detection).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from domain.db import _write_intent, db, write_transaction
from domain.i18n import N_
from domain.models import UserSession, utcnow

log = logging.getLogger(__name__)

# A session without "Keep me signed in" ends after this long without a request.
SESSION_IDLE = timedelta(hours=12)
# "Keep me signed in" lasts this long from sign-in; using it does not extend it.
REMEMBER_FOR = timedelta(days=30)
# last_seen_at is written at most this often per device.
TOUCH_EVERY = timedelta(minutes=1)
# Two requests that race with the same remember cookie are not a theft.
ROTATION_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class Started:
    """A new or restored session: what the cookies must now carry."""

    record_id: str
    user_id: int
    session_value: str
    remember_value: str | None
    expires_at: datetime


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(value: object) -> tuple[str, str] | None:
    if not isinstance(value, str) or len(value) > 200 or value.count(".") != 1:
        return None
    record_id, secret = value.split(".")
    if not record_id or not secret:
        return None
    return record_id, secret


_BROWSERS = [("Edg/", "Edge"), ("EdgA/", "Edge"), ("EdgiOS/", "Edge"), ("OPR/", "Opera"),
             ("SamsungBrowser/", "Samsung Internet"), ("Firefox/", "Firefox"),
             ("FxiOS/", "Firefox"), ("CriOS/", "Chrome"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari")]
_SYSTEMS = [("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"),
            ("CrOS", "ChromeOS"), ("Windows", "Windows"), ("Macintosh", "macOS"),
            ("Linux", "Linux")]


UNKNOWN_DEVICE = N_("Unknown browser")


def describe_device(user_agent: str) -> str:
    """A short label such as "Chrome on Android" for the devices list."""
    ua = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in ua), "")
    system = next((name for marker, name in _SYSTEMS if marker in ua), "")
    if browser and system:
        # Stored in English; the devices list shows it through _() with these parameters.
        return N_("%(browser)s on %(system)s") % {"browser": browser, "system": system}
    if browser or system:
        return browser or system
    # Scripts and unknown clients: the first product token, e.g. "curl/8.5".
    match = re.match(r"[\w.\-]+/[\w.\-]+", ua)
    return match.group(0)[:80] if match else UNKNOWN_DEVICE


def _clean_meta(user_agent: str | None, address: str | None) -> tuple[str, str, str]:
    ua = (user_agent or "")[:255]
    return ua, describe_device(ua), (address or "")[:45]


def start_session(user_id: int, *, user_agent: str = "", address: str = "",
                  remember: bool = False, now: datetime | None = None) -> Started:
    """Record a new signed-in device for the user."""
    now = now or utcnow()
    ua, device, address = _clean_meta(user_agent, address)
    secret = secrets.token_urlsafe(32)
    token = secrets.token_urlsafe(32) if remember else None
    record = UserSession(
        id=secrets.token_urlsafe(16), user_id=user_id, secret_hash=_digest(secret),
        remember_hash=_digest(token) if token else None, remember_rotated_at=now if token else None,
        created_at=now, last_seen_at=now,
        expires_at=now + (REMEMBER_FOR if remember else SESSION_IDLE),
        user_agent=ua, device=device, address=address)
    with write_transaction() as session:
        # Tidy up: rows whose time is up already sign nobody in.
        session.execute(delete(UserSession).where(UserSession.user_id == user_id,
                                                  UserSession.expires_at <= now))
        session.add(record)
    return Started(record.id, user_id, f"{record.id}.{secret}",
                   f"{record.id}.{token}" if token else None, record.expires_at)


_SESSION_WITH_USER = (select(UserSession).options(joinedload(UserSession.user))
                      .where(UserSession.id == bindparam("session_id")))


def resolve(value: object, *, address: str = "", now: datetime | None = None) -> UserSession | None:
    """The live session record for a session-cookie value, or None.

    Records when the device was last seen, at most once a minute, in a short
    write of its own so that a read-only request never commits anything else."""
    parts = _split(value)
    if parts is None:
        return None
    now = now or utcnow()
    # The record and its user in one statement: the user loader's session.get(User)
    # then finds the user in the session (held by record.user) instead of asking again.
    record = db.session.scalar(_SESSION_WITH_USER, {"session_id": parts[0]})
    if record is None or record.expires_at <= now:
        return None
    if not hmac.compare_digest(record.secret_hash, _digest(parts[1])):
        return None
    if now - record.last_seen_at >= TOUCH_EVERY:
        _touch(record, (address or "")[:45], now)
    return record


def _touch(record: UserSession, address: str, now: datetime) -> None:
    if _write_intent.get():
        return  # inside someone's write: never wait on our own lock; next request will do
    values = {"last_seen_at": now, "address": address or record.address}
    if not record.remembered:
        values["expires_at"] = now + SESSION_IDLE
    stmt = (update(UserSession)
            .where(UserSession.id == record.id, UserSession.last_seen_at < now - TOUCH_EVERY)
            .values(**values))
    token = _write_intent.set(True)  # SQLite: BEGIN IMMEDIATE on the side connection
    try:
        with db.engine.begin() as conn:
            conn.execute(stmt)
    finally:
        _write_intent.reset(token)
    for key, value in values.items():
        set_committed_value(record, key, value)


def restore_session(remember_value: object, *, user_agent: str = "", address: str = "",
                    now: datetime | None = None) -> Started | None:
    """Sign a device back in from its remember cookie, rotating token and secret.

    None when the cookie is unknown, expired or already used. A token used once
    before, coming back after the grace period, ends the whole session."""
    parts = _split(remember_value)
    if parts is None:
        return None
    now = now or utcnow()
    presented = _digest(parts[1])
    ua, device, address = _clean_meta(user_agent, address)
    with write_transaction() as session:
        # Row lock on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers.
        record = session.get(UserSession, parts[0], with_for_update=True, populate_existing=True)
        if record is None or record.remember_hash is None or record.expires_at <= now:
            return None
        if not hmac.compare_digest(record.remember_hash, presented):
            previous = record.previous_remember_hash
            if previous and hmac.compare_digest(previous, presented):
                rotated = record.remember_rotated_at or now
                if now - rotated > ROTATION_GRACE:
                    log.warning("Remember token reused after rotation; ending session %s of user %s",
                                record.id, record.user_id)
                    session.delete(record)
            return None
        secret, token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        record.secret_hash = _digest(secret)
        record.previous_remember_hash = record.remember_hash
        record.remember_hash = _digest(token)
        record.remember_rotated_at = now
        record.last_seen_at = now
        record.user_agent, record.device, record.address = ua, device, address
        started = Started(record.id, record.user_id, f"{record.id}.{secret}",
                          f"{record.id}.{token}", record.expires_at)
    return started


def end_session(record_id: str, *, user_id: int | None = None) -> bool:
    """Sign one device out. With user_id, only if the device is that user's."""
    stmt = delete(UserSession).where(UserSession.id == str(record_id)[:32])
    if user_id is not None:
        stmt = stmt.where(UserSession.user_id == user_id)
    with write_transaction() as session:
        return session.execute(stmt).rowcount > 0


def end_all_sessions(user_id: int, *, keep: str | None = None) -> int:
    """Sign the user out on every device (but ``keep``). Joins the caller's
    transaction when called inside another domain action."""
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if keep:
        stmt = stmt.where(UserSession.id != keep)
    with write_transaction() as session:
        return session.execute(stmt).rowcount


def live_sessions(user_id: int, *, now: datetime | None = None) -> list[UserSession]:
    """The user's signed-in devices, most recently seen first."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(UserSession)
        .where(UserSession.user_id == user_id, UserSession.expires_at > now)
        .order_by(UserSession.last_seen_at.desc(), UserSession.created_at.desc())))


def live_session_counts(*, now: datetime | None = None) -> dict[int, int]:
    """Signed-in devices per user id (users with none are absent)."""
    now = now or utcnow()
    rows = db.session.execute(
        select(UserSession.user_id, func.count(UserSession.id))
        .where(UserSession.expires_at > now).group_by(UserSession.user_id))
    return {user_id: count for user_id, count in rows}
