"""Staff accounts: Argon2 password hashes, roles, and a failed-login throttle.

The throttle reserves an attempt in the database *before* the password is
checked: one guarded upsert per key, all in one immediate write transaction,
so N parallel guesses give at most the limit of real password checks. A
failure keeps its reservation; a success resets the streak.

Keys, so that a lock only slows guessing and never locks the owner out:
- per (account, address) pair: 5 free failures, then 1, 2, 4 ... minutes
  between tries, capped at an hour;
- per account, from addresses the account never signed in from: 20 free
  failures, then the same back-off capped at 15 minutes;
- per address, across accounts that never signed in from it: 50 free
  failures, capped at 15 minutes.
An address a user has signed in from before (``KnownAddress``) skips the last
two, so neither a stranger's guesses nor a crowd behind one proxy address
keep that user out; only their own pair's back-off applies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, func, literal, null, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import DateTime

from domain import sessions
from domain.db import db, write_transaction
from domain.errors import NotFound, ValidationError
from domain.i18n import L_, N_, Nn_, clean_locale
from domain.models import KnownAddress, LoginThrottle, User, utcnow
from domain.store import clean_email, clean_text

ROLES = {"owner": N_("Owner"), "staff": N_("Staff")}
MIN_PASSWORD = 10


@dataclass(frozen=True)
class ThrottleRule:
    free_failures: int
    longest_wait: timedelta


PAIR_RULE = ThrottleRule(5, timedelta(hours=1))
ACCOUNT_RULE = ThrottleRule(20, timedelta(minutes=15))
ADDRESS_RULE = ThrottleRule(50, timedelta(minutes=15))
FIRST_WAIT = timedelta(minutes=1)
# A streak with no new failure for this long starts again from zero.
FORGET_AFTER = timedelta(days=1)

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so timing does not reveal accounts.
    Made on first use: each Argon2 hash takes 64 MiB, not worth paying at import."""
    return _hasher.hash("not-a-real-password")


class LoginThrottled(ValidationError):
    def __init__(self, minutes: int):
        self.minutes = minutes
        singular, plural = Nn_("Too many failed sign-ins. Try again in %(num)d minute.",
                               "Too many failed sign-ins. Try again in %(num)d minutes.")
        super().__init__(singular, plural=plural, count=minutes)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError("Password must be at least %(min)s characters.", min=MIN_PASSWORD)
    if len(password) > 200:
        raise ValidationError("Password must be at most 200 characters.")
    return password


def create_user(*, email: str, password: str, role: str = "staff", name: str = "") -> User:
    email = clean_email(email, required=True)
    name = clean_text(name, L_("Name"), max_len=120)
    if role not in ROLES:
        raise ValidationError("Role must be owner or staff.")
    _check_password(password)
    with write_transaction() as session:
        if session.scalar(select(User).where(func.lower(User.email) == email)):
            raise ValidationError("A user with email %(email)s already exists.", email=email)
        user = User(email=email, name=name, role=role, password_hash=hash_password(password))
        session.add(user)
    return user


def _wait_after(failures: int, rule: ThrottleRule) -> timedelta | None:
    """How long a key waits after its ``failures``-th failure: nothing while free
    failures remain, then 1, 2, 4 ... minutes up to the rule's longest wait."""
    over = failures - rule.free_failures
    if over < 0:
        return None
    return min(FIRST_WAIT * (2 ** min(over, 20)), rule.longest_wait)


def _insert_for(session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _reserve(session, key: str, rule: ThrottleRule, now: datetime) -> bool:
    """Count one attempt on ``key`` unless it is waiting: ONE statement, an upsert
    whose update is guarded by "not locked", returning the row only if it counted.
    The attempt that uses up the free failures sets the wait at once, so parallel
    attempts behind it find the key locked."""
    t = LoginThrottle.__table__.c
    stale = or_(t.last_attempt_at.is_(None), t.last_attempt_at < now - FORGET_AFTER)
    failures = case((stale, 1), else_=t.failures + 1)
    waits, n = [], rule.free_failures
    while True:
        wait = _wait_after(n, rule)
        waits.append((failures == n, literal(now + wait, DateTime())))
        if wait >= rule.longest_wait:
            break
        n += 1
    locked_until = case((failures < rule.free_failures, null()), *waits,
                        else_=literal(now + rule.longest_wait, DateTime()))
    first_wait = _wait_after(1, rule)
    stmt = _insert_for(session)(LoginThrottle).values(
        key=key, failures=1, window_start=now, last_attempt_at=now,
        locked_until=now + first_wait if first_wait else None)
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.key],
        set_={"failures": failures, "locked_until": locked_until, "last_attempt_at": now,
              "window_start": case((stale, now), else_=t.window_start)},
        where=or_(t.locked_until.is_(None), t.locked_until <= now),
    ).returning(t.failures)
    return session.execute(stmt).first() is not None


def _reserve_all(keys: list[tuple[str, ThrottleRule]], now: datetime) -> None:
    """Reserve an attempt on every key or on none; raises LoginThrottled."""

    class Refused(Exception):
        pass

    refused = ""
    try:
        with write_transaction() as session:
            for key, rule in keys:
                if not _reserve(session, key, rule, now):
                    refused = key
                    raise Refused
    except Refused:
        until = db.session.scalar(select(LoginThrottle.locked_until)
                                  .where(LoginThrottle.key == refused)) or now
        raise LoginThrottled(max(1, int((until - now).total_seconds() + 59) // 60)) from None


def _is_known(user: User | None, address: str) -> bool:
    if user is None or not address:
        return False
    return db.session.get(KnownAddress, (user.id, address)) is not None


def _throttle_keys(email: str, address: str, known: bool) -> list[tuple[str, ThrottleRule]]:
    email = email[:240]  # the key column holds 300: "pair:" + email + "|" + 45-char address
    keys = [(f"pair:{email}|{address}", PAIR_RULE)]
    if not known:
        keys += [(f"account:{email}", ACCOUNT_RULE), (f"address:{address}", ADDRESS_RULE)]
    return keys


def _verify(user: User | None, password: str) -> bool:
    try:
        ok = _hasher.verify(user.password_hash if user else _dummy_hash(), password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    return bool(ok and user is not None and user.active)


def _record_success(session, user: User, keys: list[tuple[str, ThrottleRule]], address: str,
                    now: datetime) -> None:
    """A right password: the pair and account streaks end; the address keeps its
    other failures but gives back this attempt's reservation."""
    for key, rule in keys:
        if key.startswith("address:"):
            t = LoginThrottle.__table__.c
            session.execute(update(LoginThrottle).where(t.key == key, t.failures > 0).values(
                failures=t.failures - 1,
                locked_until=case((t.failures - 1 < rule.free_failures, null()),
                                  else_=t.locked_until)))
        else:
            session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
    if address:
        # An upsert: two parallel first sign-ins from one address must not collide.
        session.execute(_insert_for(session)(KnownAddress).values(
            user_id=user.id, address=address, first_seen_at=now, last_seen_at=now,
        ).on_conflict_do_update(index_elements=["user_id", "address"],
                                set_={"last_seen_at": now}))
    # Streaks nobody continued for a day would only be reset on their next use.
    session.execute(delete(LoginThrottle).where(
        LoginThrottle.last_attempt_at < now - FORGET_AFTER))


def authenticate(email: str, password: str, *, ip: str = "",
                 now: datetime | None = None) -> User | None:
    """The active user with these credentials, or None. Raises LoginThrottled,
    without checking the password, while the attempt's keys are waiting."""
    now = now or utcnow()
    email = (email or "").strip().lower()
    address = (ip or "")[:45]
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    keys = _throttle_keys(email, address, _is_known(user, address))
    _reserve_all(keys, now)
    if not _verify(user, password):
        return None
    user_id = user.id
    with write_transaction() as session:
        _record_success(session, session.get(User, user_id), keys, address, now)
    return db.session.get(User, user_id)


def get_user(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.role.desc(), User.email)))


def _owners_left(session, excluding: int) -> int:
    return session.scalar(select(func.count(User.id)).where(
        User.role == "owner", User.active, User.id != excluding))


def update_user(user_id: int, *, role: str, active: bool) -> User:
    """Change role or access; the store always keeps one active owner. Taking
    access away signs the person out on every device in the same transaction."""
    if role not in ROLES:
        raise ValidationError("Role must be owner or staff.")
    with write_transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("User not found.")
        if (role != "owner" or not active) and user.role == "owner" and not _owners_left(session, user.id):
            raise ValidationError("The store needs at least one active owner.")
        user.role, user.active = role, bool(active)
        if not user.active:
            sessions.end_all_sessions(user.id)
    return user


def set_locale(user_id: int, locale: str | None) -> User:
    """A staff member's own language; empty means "the store's language"."""
    value = (locale or "").strip()
    chosen = clean_locale(value) if value else None
    if value and (chosen is None or chosen != value):
        # Only the exact codes offered on the form: "zh-CN" must not quietly become Chinese (HK).
        raise ValidationError("Choose one of the languages offered.")
    with write_transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("User not found.")
        user.locale = chosen
    return user


def set_password(user_id: int, password: str, *, keep_session: str | None = None) -> None:
    """Set a new password and sign the user out on every device but ``keep_session``
    (the device that changed it), in the same transaction."""
    _check_password(password)
    new_hash = hash_password(password)
    with write_transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("User not found.")
        user.password_hash = new_hash
        sessions.end_all_sessions(user.id, keep=keep_session)


def change_password(user_id: int, current: str, new: str, *, ip: str = "",
                    keep_session: str | None = None, now: datetime | None = None) -> None:
    """A signed-in user changes their own password. The current password is
    checked through the same throttle as a sign-in (pair key), so a borrowed
    session cannot be used to guess it."""
    now = now or utcnow()
    _check_password(new)
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found.")
    address = (ip or "")[:45]
    keys = _throttle_keys(user.email.lower(), address, known=True)
    _reserve_all(keys, now)
    if not _verify(user, current):
        raise ValidationError("The current password is wrong.")
    with write_transaction() as session:
        session.execute(delete(LoginThrottle).where(LoginThrottle.key == keys[0][0]))
    set_password(user_id, new, keep_session=keep_session)
