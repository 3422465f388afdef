"""Revocable sessions (issue 7): server-side records that sign-out, sign out
everywhere, a password change and deactivation end; our own rotating remember
token instead of Flask-Login's; the CSRF token changes at sign-in; the account
page and the owner's staff page."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from domain import sessions
from domain.db import db
from domain.models import User, UserSession, utcnow
from tests.conftest import PASSWORD, Client

CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0.0.0 Mobile Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")


def sign_in(app, user, *, remember=False, user_agent=CHROME_ANDROID, password=PASSWORD):
    """A client signed in through the real form, with the browser's User-Agent."""
    client = Client(app)
    client.http._http.environ_base["HTTP_USER_AGENT"] = user_agent
    page = client.http.get("/login")
    data = {"email": user.email, "password": password,
            "csrf_token": client.token_from(page.get_data(as_text=True))}
    if remember:
        data["remember"] = "y"
    response = client.http.post("/login", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    client.login_response = response
    return client


def cookie(client, name):
    found = client.http._http.get_cookie(name)
    return found.value if found else None


def with_cookies(app, user_agent=CHROME_ANDROID, **values) -> Client:
    """A fresh client holding only copies of these cookies (what a thief would have),
    sending the same User-Agent (Flask-Login's "strong" protection checks it)."""
    thief = Client(app)
    thief.http._http.environ_base["HTTP_USER_AGENT"] = user_agent
    for name, value in values.items():
        thief.http._http.set_cookie(name, value)
    return thief


def signed_in(client) -> bool:
    response = client.get("/orders")
    if response.status_code == 302:
        assert "/login" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def live_count(user_id) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count(UserSession.id)).where(
        UserSession.user_id == user_id))


# ------------------------------------------------------------------ sign-out


def test_copied_session_cookie_gets_login_page_after_sign_out(app, owner):
    client = sign_in(app, owner)
    copied = cookie(client, "session")
    assert signed_in(with_cookies(app, session=copied))
    assert client.post("/logout").status_code == 302
    assert not signed_in(client)
    # The copy still carries a valid signature, but its server-side session is gone.
    assert not signed_in(with_cookies(app, session=copied))
    assert live_count(owner.id) == 0


def test_session_row_keeps_only_hashes(app, owner):
    client = sign_in(app, owner, remember=True)
    row = db.session.scalars(select(UserSession)).one()
    flask_value = _session_payload(app, cookie(client, "session"))["sid"]
    remember_value = cookie(client, "shopdesk_remember")
    record_id, secret = flask_value.split(".")
    _, token = remember_value.split(".")
    assert row.id == record_id and remember_value.startswith(record_id + ".")
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.remember_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(getattr(row, c.key)) for c in UserSession.__table__.columns)
    assert secret not in stored and token not in stored
    assert row.device == "Chrome on Android" and row.address == "127.0.0.1"
    # Two sign-ins never share a secret (the old cookie was the same on every login).
    other = sign_in(app, owner, remember=True)
    assert cookie(other, "shopdesk_remember") != remember_value


def _session_payload(app, value):
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.loads(value)


def test_forged_session_id_without_secret_is_refused(app, owner):
    client = sign_in(app, owner)
    record_id = db.session.scalars(select(UserSession.id)).one()
    for forged in (record_id, f"{record_id}.wrong-secret", f"{record_id}.", ".x", "a.b.c", 12, None,
                   "x" * 500):
        assert sessions.resolve(forged) is None
    assert signed_in(client)


def test_last_seen_is_written_at_most_once_a_minute(app, owner):
    started = sessions.start_session(owner.id, user_agent=SAFARI_IPHONE, address="10.0.0.1")
    row = db.session.get(UserSession, started.record_id)
    t0 = row.last_seen_at
    assert sessions.resolve(started.session_value, address="10.0.0.2",
                            now=t0 + timedelta(seconds=50)) is not None
    db.session.rollback()
    row = db.session.get(UserSession, started.record_id)
    assert row.last_seen_at == t0 and row.address == "10.0.0.1"
    later = t0 + timedelta(seconds=61)
    assert sessions.resolve(started.session_value, address="10.0.0.2", now=later) is not None
    db.session.rollback()
    row = db.session.get(UserSession, started.record_id)
    assert row.last_seen_at == later and row.address == "10.0.0.2"
    # Without "keep me signed in", a session ends after 12 idle hours.
    assert row.expires_at == later + sessions.SESSION_IDLE
    assert sessions.resolve(started.session_value, now=later + timedelta(hours=12, seconds=1)) is None


@pytest.mark.parametrize("user_agent, label", [
    (CHROME_ANDROID, "Chrome on Android"),
    (SAFARI_IPHONE, "Safari on iPhone"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0", "Edge on Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
     "Firefox on macOS"),
    ("curl/8.5.0", "curl/8.5.0"),
    ("", "Unknown browser"),
    ("<script>alert(1)</script>", "Unknown browser"),
])
def test_device_label(user_agent, label):
    assert sessions.describe_device(user_agent) == label


# ------------------------------------------------------------------ remember me


def test_flask_login_remember_cookie_is_not_used(app, owner):
    client = sign_in(app, owner, remember=True)
    set_cookies = client.login_response.headers.getlist("Set-Cookie")
    # Flask-Login may still *delete* its cookie; it never sets one.
    assert not [c for c in set_cookies if c.startswith("remember_token=") and "Max-Age=0" not in c]
    ours = next(c for c in set_cookies if c.startswith("shopdesk_remember="))
    assert "HttpOnly" in ours and "SameSite=Lax" in ours and "Expires=" in ours
    assert "REMEMBER_COOKIE_DURATION" not in app.config
    # The old cookie format (user_id|HMAC(user_id)) no longer signs anyone in.
    from flask_login.utils import encode_cookie

    with app.test_request_context():
        legacy = encode_cookie(str(owner.id))
    thief = with_cookies(app, remember_token=legacy)
    response = thief.get("/orders")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert any(c.startswith("remember_token=;") for c in response.headers.getlist("Set-Cookie"))


def test_without_keep_me_signed_in_no_remember_cookie(app, owner):
    client = sign_in(app, owner, remember=False)
    assert cookie(client, "shopdesk_remember") is None
    assert db.session.scalars(select(UserSession)).one().remember_hash is None


def test_remember_cookie_restores_session_and_rotates(app, owner):
    client = sign_in(app, owner, remember=True)
    first = cookie(client, "shopdesk_remember")
    # The browser was closed: only the remember cookie is left.
    browser = with_cookies(app, shopdesk_remember=first)
    response = browser.get("/orders")
    assert response.status_code == 200
    second = cookie(browser, "shopdesk_remember")
    assert second and second != first and second.split(".")[0] == first.split(".")[0]
    assert signed_in(browser)  # now on the restored session cookie
    assert live_count(owner.id) == 1  # the same device, not a new one
    # The used token is spent: a copy of it restores nothing.
    assert not signed_in(with_cookies(app, shopdesk_remember=first))


def test_reused_old_remember_token_ends_the_session(app, owner, monkeypatch):
    client = sign_in(app, owner, remember=True)
    stolen = cookie(client, "shopdesk_remember")
    owner_browser = with_cookies(app, shopdesk_remember=stolen)
    assert signed_in(owner_browser)  # the owner's browser used it first (rotated)
    # Past the grace period for racing requests, the old token comes back: a thief.
    monkeypatch.setattr(sessions, "ROTATION_GRACE", timedelta(0))
    db.session.execute(UserSession.__table__.update().values(
        remember_rotated_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    assert not signed_in(with_cookies(app, shopdesk_remember=stolen))
    assert live_count(owner.id) == 0
    # The whole session ended, so the rotated token and session are dead too.
    assert not signed_in(owner_browser)
    assert not signed_in(with_cookies(app, shopdesk_remember=cookie(owner_browser,
                                                                      "shopdesk_remember") or "x.y"))


def test_old_token_within_grace_is_refused_but_session_lives(app, owner):
    client = sign_in(app, owner, remember=True)
    first = cookie(client, "shopdesk_remember")
    winner = with_cookies(app, shopdesk_remember=first)
    assert signed_in(winner)
    # A request that raced the rotation with the same cookie: refused, not theft.
    assert not signed_in(with_cookies(app, shopdesk_remember=first))
    assert live_count(owner.id) == 1 and signed_in(winner)


def test_remember_token_expires(app, owner):
    client = sign_in(app, owner, remember=True)
    row = db.session.scalars(select(UserSession)).one()
    assert row.expires_at - row.created_at == timedelta(days=30)
    value = cookie(client, "shopdesk_remember")
    db.session.execute(UserSession.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert not signed_in(with_cookies(app, shopdesk_remember=value))
    assert not signed_in(client)


def test_sign_out_kills_the_remember_token(app, owner):
    client = sign_in(app, owner, remember=True)
    value = cookie(client, "shopdesk_remember")
    response = client.post("/logout")
    assert any(c.startswith("shopdesk_remember=;") for c in response.headers.getlist("Set-Cookie"))
    assert not signed_in(with_cookies(app, shopdesk_remember=value))


def test_remember_cookie_is_secure_when_session_cookie_is(migrated_db, tmp_path, owner):
    import shutil

    from app import create_app

    path = tmp_path / "secure.db"
    shutil.copy(migrated_db, path)
    secure_app = create_app({"TESTING": True, "SECRET_KEY": "s" * 40, "SESSION_COOKIE_SECURE": True,
                             "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with secure_app.app_context():
        from domain.accounts import create_user

        user = create_user(email="secure@shop.test", password=PASSWORD, role="owner")
        http = secure_app.test_client()
        page = http.get("/login", base_url="https://localhost")
        token = Client.token_from(page.get_data(as_text=True))
        response = http.post("/login", base_url="https://localhost", data={
            "email": user.email, "password": PASSWORD, "csrf_token": token, "remember": "y"},
            headers={"Referer": "https://localhost/login"})  # Flask-WTF's HTTPS referrer check
        assert response.status_code == 302
        ours = next(c for c in response.headers.getlist("Set-Cookie")
                    if c.startswith("shopdesk_remember="))
        assert "Secure" in ours and "HttpOnly" in ours
        db.session.remove()
        db.engine.dispose()


# ------------------------------------------------------------------ password, deactivation


def test_set_password_ends_every_session(app, owner):
    from domain.accounts import set_password

    phone, laptop = sign_in(app, owner, remember=True), sign_in(app, owner)
    remembered = cookie(phone, "shopdesk_remember")
    set_password(owner.id, "a brand new password")
    assert live_count(owner.id) == 0
    assert not signed_in(phone) and not signed_in(laptop)
    assert not signed_in(with_cookies(app, shopdesk_remember=remembered))


def test_set_password_refused_changes_nothing(app, owner):
    from domain.accounts import set_password
    from domain.errors import ValidationError

    client = sign_in(app, owner)
    with pytest.raises(ValidationError):
        set_password(owner.id, "short")
    assert live_count(owner.id) == 1 and signed_in(client)


def test_deactivation_ends_every_session_even_after_reactivation(app, owner, staff):
    from domain.accounts import update_user

    client = sign_in(app, staff, remember=True)
    copied = cookie(client, "session")
    remembered = cookie(client, "shopdesk_remember")
    update_user(staff.id, role="staff", active=False)
    assert live_count(staff.id) == 0
    update_user(staff.id, role="staff", active=True)
    assert not signed_in(with_cookies(app, session=copied))
    assert not signed_in(with_cookies(app, shopdesk_remember=remembered))
    # A role change alone signs nobody out.
    again = sign_in(app, staff)
    update_user(staff.id, role="staff", active=True)
    assert signed_in(again)


def test_owner_deactivating_staff_in_settings_signs_them_out(app, owner, staff):
    owner_client = sign_in(app, owner)
    staff_client = sign_in(app, staff)
    response = owner_client.post(f"/settings/staff/{staff.id}", {f"u{staff.id}-role": "staff"})
    assert response.status_code == 302
    assert not signed_in(staff_client) and live_count(staff.id) == 0


# ------------------------------------------------------------------ CSRF rotation


def test_csrf_token_from_before_sign_in_stops_working(app, owner):
    client = Client(app)
    before = client.token_from(client.http.get("/login").get_data(as_text=True))
    response = client.http.post("/login", data={"email": owner.email, "password": PASSWORD,
                                                "csrf_token": before})
    assert response.status_code == 302
    other = sign_in(app, owner)
    stale = client.http.post("/account/devices/sign-out-others", data={"csrf_token": before})
    assert stale.status_code == 400
    assert signed_in(other)  # the refused request ended nothing
    after = client.csrf()
    assert after != before
    fresh = client.http.post("/account/devices/sign-out-others", data={"csrf_token": after})
    assert fresh.status_code == 302 and not signed_in(other)


# ------------------------------------------------------------------ /account


def test_account_page_lists_devices(app, owner):
    laptop = sign_in(app, owner, user_agent=SAFARI_IPHONE)
    phone = sign_in(app, owner, remember=True)
    html = phone.get("/account").get_data(as_text=True)
    assert "Signed-in devices" in html
    assert "Chrome on Android" in html and "Safari on iPhone" in html and "127.0.0.1" in html
    assert html.count(">This device<") == 1 and "Last seen" in html
    assert "Sign out everywhere else" in html and "Sign out everywhere, including here" in html
    # "This device" marks the row of the device looking at the page.
    this_row = html[html.index(">This device<") - 400: html.index(">This device<")]
    assert "Chrome on Android" in this_row
    assert signed_in(laptop)


def test_topbar_name_links_to_account(owner_client):
    html = owner_client.get("/orders").get_data(as_text=True)
    assert re.search(r'<a class="who" href="/account"', html)


def test_account_needs_sign_in(client):
    response = client.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sign_out_one_other_device(app, owner):
    laptop, phone = sign_in(app, owner, user_agent=SAFARI_IPHONE), sign_in(app, owner)
    laptop_id = db.session.scalars(select(UserSession.id).where(
        UserSession.device == "Safari on iPhone")).one()
    response = phone.post("/account/devices/sign-out", {"session_id": laptop_id})
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    assert not signed_in(laptop) and signed_in(phone)


def test_sign_out_this_device_from_the_list(app, owner):
    phone = sign_in(app, owner)
    this_id = db.session.scalars(select(UserSession.id)).one()
    response = phone.post("/account/devices/sign-out", {"session_id": this_id})
    assert "/login" in response.headers["Location"]
    assert not signed_in(phone)


def test_cannot_sign_out_someone_elses_device(app, owner, staff):
    owner_client, staff_client = sign_in(app, owner), sign_in(app, staff)
    staff_id = db.session.scalars(select(UserSession.id).where(UserSession.user_id == staff.id)).one()
    response = owner_client.post("/account/devices/sign-out", {"session_id": staff_id})
    assert response.status_code == 302
    assert signed_in(staff_client) and live_count(staff.id) == 1
    for hostile in ("", "x" * 33, "' OR 1=1 --"):
        owner_client.post("/account/devices/sign-out", {"session_id": hostile})
    assert live_count(staff.id) == 1 and live_count(owner.id) == 1


def test_sign_out_everywhere_else_keeps_this_device(app, owner, staff):
    a, b, here = sign_in(app, owner), sign_in(app, owner, remember=True), sign_in(app, owner)
    staff_client = sign_in(app, staff)
    response = here.post("/account/devices/sign-out-others")
    assert response.status_code == 302
    assert signed_in(here) and not signed_in(a) and not signed_in(b)
    assert signed_in(staff_client)


def test_sign_out_everywhere_including_here(app, owner):
    a, here = sign_in(app, owner), sign_in(app, owner)
    response = here.post("/account/devices/sign-out-all")
    assert "/login" in response.headers["Location"]
    assert not signed_in(here) and not signed_in(a) and live_count(owner.id) == 0


def test_change_password_keeps_this_device_ends_others(app, owner):
    from domain.accounts import authenticate

    other, here = sign_in(app, owner, remember=True), sign_in(app, owner)
    response = here.post("/account/password", {"current": PASSWORD, "new": "new password 2026",
                                                "confirm": "new password 2026"})
    assert response.status_code == 302
    assert signed_in(here) and not signed_in(other) and live_count(owner.id) == 1
    assert authenticate(owner.email, "new password 2026", ip="127.0.0.1") is not None


@pytest.mark.parametrize("form, message", [
    ({"current": "wrong password!!", "new": "new password 2026", "confirm": "new password 2026"},
     "The current password is wrong."),
    ({"current": PASSWORD, "new": "new password 2026", "confirm": "other password 2026"},
     "The two new passwords are different."),
    ({"current": PASSWORD, "new": "short", "confirm": "short"}, "at least 10 characters"),
    ({"current": "", "new": "new password 2026", "confirm": "new password 2026"},
     "Enter your current password."),
])
def test_change_password_refusals_change_nothing(app, owner, form, message):
    from domain.accounts import authenticate

    other, here = sign_in(app, owner), sign_in(app, owner)
    response = here.post("/account/password", form)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert signed_in(other) and signed_in(here)
    assert authenticate(owner.email, PASSWORD, ip="127.0.0.1") is not None


def test_change_password_guessing_is_throttled(app, owner):
    here = sign_in(app, owner)
    codes = [here.post("/account/password", {"current": f"guess number {i}", "new": "new password 2026",
                                             "confirm": "new password 2026"}).status_code
             for i in range(6)]
    assert codes == [422] * 5 + [429]


# ------------------------------------------------------------------ Settings → Staff


def test_staff_page_shows_session_counts_and_links_to_devices(app, owner, staff):
    owner_client = sign_in(app, owner)
    sign_in(app, staff), sign_in(app, staff)
    html = owner_client.get("/settings/staff").get_data(as_text=True)
    assert "Signed in on 2 devices." in html and "Signed in on 1 device." in html
    assert f'action="/settings/staff/{staff.id}/sign-out"' in html
    assert f'action="/settings/staff/{owner.id}/sign-out"' not in html  # own: via /account
    assert 'href="/account#devices"' in html and "Signed-in devices" in html


def test_owner_signs_staff_out_everywhere(app, owner, staff):
    owner_client = sign_in(app, owner)
    phone, laptop = sign_in(app, staff, remember=True), sign_in(app, staff)
    remembered = cookie(phone, "shopdesk_remember")
    response = owner_client.post(f"/settings/staff/{staff.id}/sign-out")
    assert response.status_code == 302
    follow = owner_client.get("/settings/staff").get_data(as_text=True)
    assert "is signed out on 2 devices." in follow
    assert not signed_in(phone) and not signed_in(laptop)
    assert not signed_in(with_cookies(app, shopdesk_remember=remembered))
    assert signed_in(owner_client)
    # The account itself still works: signing in again is allowed.
    assert signed_in(sign_in(app, staff))


def test_staff_cannot_sign_others_out(app, owner, staff):
    owner_client, staff_client = sign_in(app, owner), sign_in(app, staff)
    assert staff_client.post(f"/settings/staff/{owner.id}/sign-out").status_code == 403
    assert signed_in(owner_client)
    assert sign_in(app, owner).post("/settings/staff/99999/sign-out").status_code == 404


def test_unknown_user_loader_id_mismatch_is_anonymous(app, owner, staff):
    """A session cookie whose Flask-Login user id was edited to another user's
    (with the secret key) still only signs in the session's own user."""
    client = sign_in(app, staff)
    payload = _session_payload(app, cookie(client, "session"))
    payload["_user_id"] = str(owner.id)
    forged = app.session_interface.get_signing_serializer(app).dumps(payload)
    assert not signed_in(with_cookies(app, session=forged))
    assert db.session.get(User, owner.id).active


def test_signing_in_again_in_the_same_browser_replaces_its_old_session(app, owner):
    client = sign_in(app, owner)
    # The browser reaches the sign-in page again while still carrying its old
    # session id (its Flask-Login identity was dropped, as after a cookie mix-up).
    with client.http._http.session_transaction() as cookie_session:
        assert cookie_session.get("sid")
        cookie_session.pop("_user_id", None)
    assert not signed_in(client)
    page = client.http.get("/login")
    response = client.http.post("/login", data={
        "email": owner.email, "password": PASSWORD,
        "csrf_token": client.token_from(page.get_data(as_text=True))})
    assert response.status_code == 302
    assert live_count(owner.id) == 1 and signed_in(client)


def test_a_phone_moving_between_networks_stays_signed_in(app, owner):
    """Revocation is the server-side record's job, so a new client address (Wi-Fi to
    mobile data) does not sign the person out; signing out still ends it."""
    client = sign_in(app, owner)
    client.http._http.environ_base["REMOTE_ADDR"] = "198.51.100.23"
    assert signed_in(client)
    assert live_count(owner.id) == 1


def test_a_desk_request_reads_its_session_and_user_in_one_statement(app, owner):
    from sqlalchemy import event

    client = Client(app).login(owner)
    seen = []

    def record(conn, cursor, statement, *args):
        if re.search(r'FROM "?user_session"?|FROM "?user"?\b', statement):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert client.get("/orders").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(seen) == 1 and "JOIN" in seen[0], seen


def test_a_deactivated_user_is_signed_out_on_the_next_request(app, owner):
    client = Client(app).login(owner)
    assert client.get("/orders").status_code == 200
    db.session.get(User, owner.id).active = False
    db.session.commit()
    response = client.get("/orders")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
