"""The login throttle (issue 7): the check-and-count is one atomic step before the
password check, so parallel guesses get at most the limit of real password
checks (real threads on the real SQLite file, through HTTP, and on PostgreSQL);
a lock only slows guessing (per account and address, exponential back-off), an
address that signed in before is never locked out by strangers, and a crowd
behind one proxy address is not locked out together."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import timedelta

import pytest
from conftest import fill_payment_details

from domain import accounts
from domain.accounts import LoginThrottled, authenticate
from domain.db import db
from domain.models import LoginThrottle, utcnow
from tests.conftest import PASSWORD, Client

WRONG = "not the password"


class CountingHasher:
    """The real Argon2 hasher, counting each real password verification."""

    def __init__(self, real):
        self.real = real
        self.verifications = 0
        self._lock = threading.Lock()

    def verify(self, hashed, password):
        with self._lock:
            self.verifications += 1
        return self.real.verify(hashed, password)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def hasher(monkeypatch):
    counting = CountingHasher(accounts._hasher)
    monkeypatch.setattr(accounts, "_hasher", counting)
    return counting


def run_together(app, count, work):
    """``work(i)`` in ``count`` threads released at once, each in its own app
    context (its own database session); returns each outcome."""
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def body(i):
        with app.app_context():
            barrier.wait()
            try:
                outcomes[i] = work(i)
            except Exception as exc:  # asserted on by the caller
                outcomes[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return outcomes


def guess(email, ip="203.0.113.7", password=WRONG, now=None):
    try:
        return authenticate(email, password, ip=ip, now=now)
    except LoginThrottled as exc:
        return exc


# ------------------------------------------------------------------ the race


def test_25_parallel_wrong_guesses_get_at_most_5_password_checks(app, owner, hasher, db_path):
    assert db_path.endswith(".db")  # the real SQLite file, not :memory:
    email = owner.email
    db.session.remove()
    outcomes = run_together(app, 25, lambda i: guess(email))
    assert hasher.verifications == 5
    assert sum(o is None for o in outcomes) == 5
    assert sum(isinstance(o, LoginThrottled) for o in outcomes) == 20
    row = db.session.get(LoginThrottle, f"pair:{email}|203.0.113.7")
    assert row.failures == 5 and row.locked_until > utcnow()


def test_25_parallel_wrong_guesses_over_http(app, owner, hasher):
    clients = []
    for _ in range(25):
        client = app.test_client()
        with app.app_context():  # its own g, so its own CSRF token
            page = client.get("/login").get_data(as_text=True)
        clients.append((client, Client.token_from(page)))
    email = owner.email
    db.session.remove()

    def post(i):
        client, token = clients[i]
        return client.post("/login", data={"email": email, "password": WRONG,
                                           "csrf_token": token}).status_code

    codes = run_together(app, 25, post)
    assert hasher.verifications == 5, codes
    assert sorted(codes) == [401] * 5 + [429] * 20


def test_parallel_guesses_at_a_known_address_are_still_capped(app, owner, hasher):
    """A known address skips the account-wide counter, not its own pair's."""
    assert authenticate(owner.email, PASSWORD, ip="198.51.100.1") is not None
    hasher.verifications = 0
    email = owner.email
    db.session.remove()
    outcomes = run_together(app, 25, lambda i: guess(email, ip="198.51.100.1"))
    assert hasher.verifications == 5
    assert sum(isinstance(o, LoginThrottled) for o in outcomes) == 20


# ------------------------------------------------------------------ back-off


def test_lock_backs_off_exponentially_and_never_locks_for_good(app, owner, hasher):
    t = utcnow()
    assert [guess(owner.email, now=t) for _ in range(5)] == [None] * 5
    refused = guess(owner.email, now=t)
    assert isinstance(refused, LoginThrottled) and refused.minutes == 1
    assert "Try again in 1 minute." in str(refused)
    assert hasher.verifications == 5  # refused before any password check
    # 1, 2, 4, 8, 16, 32 minutes between tries, then at most an hour.
    for wait in (1, 2, 4, 8, 16, 32, 60, 60):
        assert isinstance(guess(owner.email, now=t + timedelta(minutes=wait) - timedelta(seconds=1)),
                          LoginThrottled)
        t += timedelta(minutes=wait)
        assert guess(owner.email, now=t) is None  # one more try allowed, and it fails
        again = guess(owner.email, now=t)
        assert isinstance(again, LoginThrottled)
        assert again.minutes == min(wait * 2, 60)
    # The right password still gets in once the wait is over: a lock only slows.
    t += timedelta(minutes=60)
    assert authenticate(owner.email, PASSWORD, ip="203.0.113.7", now=t) is not None


def test_success_resets_the_streak(app, owner):
    t = utcnow()
    for _ in range(4):
        assert guess(owner.email, now=t) is None
    assert authenticate(owner.email, PASSWORD, ip="203.0.113.7", now=t) is not None
    assert [guess(owner.email, now=t) for _ in range(5)] == [None] * 5
    assert isinstance(guess(owner.email, now=t), LoginThrottled)


def test_a_quiet_day_forgets_the_streak(app, owner):
    t = utcnow()
    for _ in range(5):
        guess(owner.email, now=t)
    later = t + timedelta(days=1, minutes=1)
    assert [guess(owner.email, now=later) for _ in range(5)] == [None] * 5


def test_locked_pair_refuses_even_the_right_password(app, owner, hasher):
    t = utcnow()
    for _ in range(5):
        guess(owner.email, now=t)
    assert isinstance(guess(owner.email, password=PASSWORD, now=t), LoginThrottled)
    assert hasher.verifications == 5


# ------------------------------------------------------------------ not a denial of service


@pytest.fixture
def small_ceilings(monkeypatch):
    """The account-wide and address-wide ceilings at 8 (20 and 50 in production) keep
    these tests quick: each free failure is a real Argon2 check."""
    monkeypatch.setattr(accounts, "ACCOUNT_RULE", accounts.ThrottleRule(8, timedelta(minutes=15)))
    monkeypatch.setattr(accounts, "ADDRESS_RULE", accounts.ThrottleRule(8, timedelta(minutes=15)))


def test_strangers_cannot_lock_the_owner_out_of_a_known_address(app, owner, small_ceilings):
    t = utcnow()
    assert authenticate(owner.email, PASSWORD, ip="198.51.100.10", now=t) is not None
    # A botnet: 12 addresses, 5 wrong guesses each, at the owner's account.
    for n in range(12):
        for _ in range(5):
            guess(owner.email, ip=f"192.0.2.{n}", now=t)
    from_new_address = guess(owner.email, ip="192.0.2.200", password=PASSWORD, now=t)
    assert isinstance(from_new_address, LoginThrottled)  # the account-wide ceiling slows strangers
    assert authenticate(owner.email, PASSWORD, ip="198.51.100.10", now=t) is not None
    # ...and only slows: after its wait a new address may try again.
    later = t + accounts.ACCOUNT_RULE.longest_wait + timedelta(seconds=1)
    assert authenticate(owner.email, PASSWORD, ip="192.0.2.200", now=later) is not None


def test_guesses_from_one_address_lock_neither_the_account_elsewhere_nor_forever(app, owner):
    t = utcnow()
    for _ in range(30):
        guess(owner.email, ip="192.0.2.66", now=t)
    assert authenticate(owner.email, PASSWORD, ip="198.51.100.77", now=t) is not None


def test_one_proxy_address_does_not_lock_every_account(app, owner, staff, small_ceilings):
    """SHOPDESK_PROXY_COUNT unset behind nginx: every client is 127.0.0.1."""
    t = utcnow()
    proxy = "127.0.0.1"
    assert authenticate(owner.email, PASSWORD, ip=proxy, now=t) is not None
    assert authenticate(staff.email, PASSWORD, ip=proxy, now=t) is not None
    # Someone behind the same proxy sprays 12 accounts that do not exist.
    for n in range(12):
        guess(f"nobody{n}@shop.test", ip=proxy, now=t)
    assert isinstance(guess("nobody-else@shop.test", ip=proxy, now=t), LoginThrottled)
    # People who signed in through the proxy before still can.
    assert authenticate(owner.email, PASSWORD, ip=proxy, now=t) is not None
    assert authenticate(staff.email, PASSWORD, ip=proxy, now=t) is not None


def test_known_address_is_recorded_only_on_success(app, owner):
    from domain.models import KnownAddress

    guess(owner.email, ip="192.0.2.9")
    assert db.session.get(KnownAddress, (owner.id, "192.0.2.9")) is None
    authenticate(owner.email, PASSWORD, ip="192.0.2.9")
    assert db.session.get(KnownAddress, (owner.id, "192.0.2.9")) is not None


def test_unknown_email_is_throttled_like_a_real_one(app, owner, hasher):
    t = utcnow()
    outcomes = [guess("ghost@shop.test", now=t) for _ in range(6)]
    assert outcomes[:5] == [None] * 5 and isinstance(outcomes[5], LoginThrottled)
    assert hasher.verifications == 5  # the dummy hash is checked, so timing is alike


@pytest.mark.parametrize("email, ip", [
    ("x" * 5000 + "@shop.test", "1" * 500),
    ("'; DROP TABLE login_throttle; --", "::ffff:127.0.0.1"),
    ("陳大文@商店.香港", ""),
    ("", "203.0.113.1"),
])
def test_hostile_input_is_counted_not_crashed(app, owner, email, ip):
    assert guess(email, ip=ip) is None
    assert db.session.query(LoginThrottle).count() >= 1
    assert all(len(row.key) <= 300 for row in db.session.query(LoginThrottle))


def test_login_page_shows_the_wait(client, owner):
    token = client.token_from(client.get("/login").get_data(as_text=True))
    for _ in range(5):
        client.http.post("/login", data={"email": owner.email, "password": WRONG, "csrf_token": token})
    response = client.http.post("/login", data={"email": owner.email, "password": WRONG,
                                                "csrf_token": token})
    assert response.status_code == 429
    assert "Too many failed sign-ins. Try again in 1 minute." in response.get_data(as_text=True)


# ------------------------------------------------------------------ proxy warning


def _app_with(migrated_db, tmp_path, monkeypatch, proxies):
    import shutil

    from app import create_app

    monkeypatch.setenv("SHOPDESK_PROXY_COUNT", proxies)
    path = tmp_path / f"proxy{proxies}.db"
    shutil.copy(migrated_db, path)
    return create_app({"TESTING": True, "SECRET_KEY": "p" * 40,
                       "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})


def test_warns_once_when_forwarded_for_arrives_without_proxy_count(migrated_db, tmp_path,
                                                                   monkeypatch, caplog):
    proxied = _app_with(migrated_db, tmp_path, monkeypatch, "0")
    http = proxied.test_client()
    with caplog.at_level(logging.WARNING):
        http.get("/login")
        assert "SHOPDESK_PROXY_COUNT" not in caplog.text  # no proxy header: no warning
        http.get("/login", headers={"X-Forwarded-For": "203.0.113.5"})
        http.get("/login", headers={"X-Forwarded-For": "203.0.113.6"})
    assert caplog.text.count("SHOPDESK_PROXY_COUNT is 0") == 1


def test_no_warning_when_proxy_count_is_set(migrated_db, tmp_path, monkeypatch, caplog):
    proxied = _app_with(migrated_db, tmp_path, monkeypatch, "1")
    with caplog.at_level(logging.WARNING):
        proxied.test_client().get("/login", headers={"X-Forwarded-For": "203.0.113.5"})
    assert "SHOPDESK_PROXY_COUNT" not in caplog.text


# ------------------------------------------------------------------ PostgreSQL

PG_ADMIN_URL = os.environ.get("SHOPDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def pg_app():
    import psycopg
    from flask_migrate import upgrade

    from app import create_app
    from domain.store import ensure_store_defaults

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"No PostgreSQL at {PG_ADMIN_URL}: {exc}")
    name = f"shopdesk_throttle_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    pg = create_app({"TESTING": True, "SECRET_KEY": "pg", "SQLALCHEMY_DATABASE_URI": url,
                     "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 30, "max_overflow": 10}})
    try:
        with pg.app_context():
            upgrade()
            ensure_store_defaults()
            fill_payment_details()
            yield pg
            db.session.remove()
            db.engine.dispose()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_postgres_25_parallel_wrong_guesses_get_at_most_5_password_checks(pg_app, hasher):
    from domain.accounts import create_user

    email = f"owner-{uuid.uuid4().hex[:6]}@shop.test"
    create_user(email=email, password=PASSWORD, role="owner")
    db.session.remove()
    outcomes = run_together(pg_app, 25, lambda i: guess(email, ip="203.0.113.99"))
    assert hasher.verifications == 5
    assert sum(o is None for o in outcomes) == 5
    assert sum(isinstance(o, LoginThrottled) for o in outcomes) == 20, outcomes


def test_postgres_known_address_and_back_off(pg_app, small_ceilings):
    from domain.accounts import create_user

    email = f"staff-{uuid.uuid4().hex[:6]}@shop.test"
    create_user(email=email, password=PASSWORD)
    t = utcnow()
    assert authenticate(email, PASSWORD, ip="198.51.100.3", now=t) is not None
    assert authenticate(email, PASSWORD, ip="198.51.100.3", now=t) is not None  # upsert, no clash
    for n in range(6):
        guess(email, ip=f"192.0.2.{n}", now=t)
        guess(email, ip=f"192.0.2.{n}", now=t)
    assert authenticate(email, PASSWORD, ip="198.51.100.3", now=t) is not None
    assert isinstance(guess(email, ip="192.0.2.250", password=PASSWORD, now=t), LoginThrottled)


def test_postgres_sessions_end_to_end(pg_app):
    """Sign in with "keep me signed in", restore from the remember cookie (row lock
    and rotation on PostgreSQL), sign out; copies of both cookies then get the login page."""
    from domain.accounts import create_user

    email = f"pg-{uuid.uuid4().hex[:6]}@shop.test"
    create_user(email=email, password=PASSWORD, role="owner")
    http = pg_app.test_client()
    with pg_app.app_context():
        token = Client.token_from(http.get("/login").get_data(as_text=True))
    with pg_app.app_context():
        assert http.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token,
                                         "remember": "y"}).status_code == 302
    session_cookie = http.get_cookie("session").value
    remember = http.get_cookie("shopdesk_remember").value
    restored = pg_app.test_client()
    restored.set_cookie("shopdesk_remember", remember)
    with pg_app.app_context():
        assert restored.get("/orders").status_code == 200
    assert restored.get_cookie("shopdesk_remember").value != remember
    with pg_app.app_context():
        page = restored.get("/orders").get_data(as_text=True)
    with pg_app.app_context():
        restored.post("/logout", data={"csrf_token": Client.token_from(page)})
    for name, value in (("session", session_cookie), ("shopdesk_remember", remember)):
        thief = pg_app.test_client()
        thief.set_cookie(name, value)
        with pg_app.app_context():
            assert thief.get("/orders").status_code == 302
