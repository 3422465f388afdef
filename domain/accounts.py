"""Staff accounts: Argon2 password hashes, roles, and a failed-login throttle."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select

from domain.db import db, write_transaction
from domain.errors import NotFound, ValidationError
from domain.models import LoginThrottle, User, utcnow
from domain.store import clean_email, clean_text

ROLES = {"owner": "Owner", "staff": "Staff"}
MIN_PASSWORD = 10
# Five wrong passwords for one email (or twenty from one address) within
# 15 minutes locks that key for 15 minutes.
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_LIMITS = {"email": 5, "ip": 20}

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the email is unknown, so timing does not reveal accounts.
    Made on first use: each Argon2 hash takes 64 MiB, not worth paying at import."""
    return _hasher.hash("not-a-real-password")


class LoginThrottled(ValidationError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_password(password: str) -> str:
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError(f"Password must be at least {MIN_PASSWORD} characters.")
    if len(password) > 200:
        raise ValidationError("Password must be at most 200 characters.")
    return password


def create_user(*, email: str, password: str, role: str = "staff", name: str = "") -> User:
    email = clean_email(email, required=True)
    name = clean_text(name, "Name", max_len=120)
    if role not in ROLES:
        raise ValidationError("Role must be owner or staff.")
    _check_password(password)
    with write_transaction() as session:
        if session.scalar(select(User).where(func.lower(User.email) == email)):
            raise ValidationError(f"A user with email {email} already exists.")
        user = User(email=email, name=name, role=role, password_hash=hash_password(password))
        session.add(user)
    return user


def _throttle_keys(email: str, ip: str) -> list[tuple[str, int]]:
    return [(f"email:{email.lower()[:254]}", THROTTLE_LIMITS["email"]),
            (f"ip:{ip[:45]}", THROTTLE_LIMITS["ip"])]


def authenticate(email: str, password: str, *, ip: str = "",
                 now: datetime | None = None) -> User | None:
    """The active user with these credentials, or None. Raises LoginThrottled
    while too many recent failures are on record for the email or address."""
    now = now or utcnow()
    email = (email or "").strip().lower()
    keys = _throttle_keys(email, ip)
    for key, _limit in keys:
        row = db.session.get(LoginThrottle, key)
        if row and row.locked_until and row.locked_until > now:
            minutes = max(1, int((row.locked_until - now).total_seconds() // 60) + 1)
            raise LoginThrottled(
                f"Too many failed sign-ins. Try again in {minutes} minute(s).")
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    try:
        ok = _hasher.verify(user.password_hash if user else _dummy_hash(), password or "")
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and user is not None and user.active
    with write_transaction() as session:
        for key, limit in keys:
            row = session.get(LoginThrottle, key)
            if ok:
                if row and key.startswith("email:"):
                    session.delete(row)
                continue
            if row is None:
                row = LoginThrottle(key=key, failures=0, window_start=now)
                session.add(row)
            if now - row.window_start > THROTTLE_WINDOW:
                row.failures, row.window_start, row.locked_until = 0, now, None
            row.failures += 1
            if row.failures >= limit:
                row.locked_until = now + THROTTLE_WINDOW
    return db.session.get(User, user.id) if ok else None


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.role.desc(), User.email)))


def _owners_left(session, excluding: int) -> int:
    return session.scalar(select(func.count(User.id)).where(
        User.role == "owner", User.active, User.id != excluding))


def update_user(user_id: int, *, role: str, active: bool) -> User:
    """Change role or access; the store always keeps one active owner."""
    if role not in ROLES:
        raise ValidationError("Role must be owner or staff.")
    with write_transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("User not found.")
        if (role != "owner" or not active) and user.role == "owner" and not _owners_left(session, user.id):
            raise ValidationError("The store needs at least one active owner.")
        user.role, user.active = role, bool(active)
    return user


def set_password(user_id: int, password: str) -> None:
    _check_password(password)
    with write_transaction() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("User not found.")
        user.password_hash = hash_password(password)
