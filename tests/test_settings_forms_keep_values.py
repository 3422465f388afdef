"""Settings, new staff, WhatsApp and the password form (issue 16): a refused form comes
back (422) with what was typed, escaped, and the reason beside its input (the input's
aria-describedby names the error); nothing is saved; secrets are never sent back."""

from __future__ import annotations

from html.parser import HTMLParser
from io import BytesIO

import pytest
from conftest import PASSWORD, Client

from domain.db import db
from domain.models import PaymentMethod, ShippingMethod, StoreSettings, User

HOSTILE = "<script>alert(1)</script>"
LONG = "x" * 10_000


class Page(HTMLParser):
    """Every element by id (its tag, attributes and text) and every form input by id."""

    def __init__(self, html: str):
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self._open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        if "id" in element["attrs"]:
            self.by_id[element["attrs"]["id"]] = element
        if tag not in ("input", "br", "img", "meta", "link"):
            self._open.append(element)

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data


def refused(response, status=422) -> tuple[str, Page]:
    html = response.get_data(as_text=True)
    assert response.status_code == status, html[:2000]
    assert "<script>alert(1)" not in html  # typed text is escaped
    return html, Page(html)


def error_beside(page: Page, input_id: str, words: str) -> None:
    """``input_id`` is marked invalid and described by an error element saying ``words``."""
    field = page.by_id[input_id]
    assert field["attrs"].get("aria-invalid") == "true", field
    described = field["attrs"].get("aria-describedby", "").split()
    errors = [page.by_id[i]["text"] for i in described if i.endswith("-error")]
    assert any(words in text for text in errors), (described, errors)


def value_of(page: Page, input_id: str) -> str:
    field = page.by_id[input_id]
    return field["text"] if field["tag"] == "textarea" else field["attrs"].get("value", "")


def row(model, **where):
    db.session.expire_all()
    thing = db.session.query(model).filter_by(**where).one()
    return {c.name: getattr(thing, c.name) for c in model.__table__.columns}


def store_form(**changes):
    s = db.session.get(StoreSettings, 1)
    data = {"name": s.name, "address": s.address or "", "phone": s.phone or "",
            "email": s.email or "", "notification_email": s.notification_email or "",
            "currency": s.currency, "timezone": s.timezone, "plan": s.plan,
            "order_prefix": s.order_prefix or "", "payment_deadline_days": "",
            "reminder_lead_hours": "", "language": s.language, "invoice_note": ""}
    data.update(changes)
    return data


# ------------------------------------------------------------------ store information


@pytest.mark.parametrize("htmx", [False, True])
def test_store_information_keeps_what_was_typed(owner_client, htmx):
    before = row(StoreSettings, id=1)
    response = owner_client.post("/settings/store", store_form(
        name="", address=HOSTILE, phone="2345 6789", invoice_note=LONG), htmx=htmx)
    html, page = refused(response)
    assert value_of(page, "address").strip() == HOSTILE and "&lt;script&gt;" in html
    assert value_of(page, "phone") == "2345 6789" and value_of(page, "invoice_note").strip() == LONG
    error_beside(page, "name", "This field is required.")
    error_beside(page, "invoice_note", "at most 1000 characters")
    assert row(StoreSettings, id=1) == before


def test_a_domain_refusal_stands_beside_its_store_input(owner_client):
    before = row(StoreSettings, id=1)
    html, page = refused(owner_client.post("/settings/store", store_form(
        timezone="Mars/Olympus", phone="999")))
    assert value_of(page, "timezone") == "Mars/Olympus" and value_of(page, "phone") == "999"
    error_beside(page, "timezone", "not a known IANA zone")
    assert row(StoreSettings, id=1) == before


def test_a_refused_logo_says_why_beside_the_file_input(owner_client):
    before = row(StoreSettings, id=1)
    response = owner_client.post("/settings/logo", {"logo": (BytesIO(b"not an image"), "x.png")},
                                 content_type="multipart/form-data")
    _html, page = refused(response)
    error_beside(page, "logo", "PNG or JPEG")
    assert row(StoreSettings, id=1) == before
    _html, page = refused(owner_client.post("/settings/logo", {}))
    error_beside(page, "logo", "Choose an image.")


# ------------------------------------------------------------------ payment details


def method_id(code):
    return db.session.query(PaymentMethod).filter_by(code=code).one().id


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("code, data, bad, words", [
    ("fps", {"fps_id": "12", "payee_name": HOSTILE}, "fps_id", "FPS ID"),
    ("bank_transfer", {"bank_name": HOSTILE, "payee_name": "Cookie Lab", "account_number": "12ab"},
     "account_number", "digits"),
    ("payme", {"payme_link": "javascript:alert(1)"}, "payme_link", "https://"),
])
def test_payment_details_keep_what_was_typed(owner_client, htmx, code, data, bad, words):
    mid = method_id(code)
    before = row(PaymentMethod, id=mid)
    response = owner_client.post(f"/settings/payments/{mid}/details",
                                 {**data, "deadline_days": "7"}, htmx=htmx)
    html, page = refused(response)
    for name, typed in data.items():
        assert value_of(page, f"pm{mid}-{name}") == typed
    assert value_of(page, f"pm{mid}-deadline_days") == "7"
    error_beside(page, f"pm{mid}-{bad}", words)
    assert ("Add a manual payment method" in html) is not htmx  # htmx swaps the list only
    # a 10,000-character note is refused beside the note, the rest kept
    html, page = refused(owner_client.post(f"/settings/payments/{mid}/details",
                                           {**data, "instructions": LONG}, htmx=htmx))
    error_beside(page, f"pm{mid}-instructions", "at most 2000 characters")
    assert value_of(page, f"pm{mid}-instructions").strip() == LONG
    assert row(PaymentMethod, id=mid) == before


# ------------------------------------------------------------------ custom payment methods


def test_a_new_payment_method_keeps_what_was_typed(owner_client):
    count = db.session.query(PaymentMethod).count()
    html, page = refused(owner_client.post("/settings/payments", {
        "name": "", "instructions": HOSTILE, "deadline_days": "abc"}))
    assert value_of(page, "new-instructions").strip() == HOSTILE
    assert value_of(page, "new-deadline_days") == "abc"
    error_beside(page, "new-name", "This field is required.")
    # a duplicate name, refused by the domain, stands beside the name
    html, page = refused(owner_client.post("/settings/payments", {
        "name": "fps", "instructions": "Pay at the counter", "deadline_days": ""}))
    error_beside(page, "new-name", "already exists")
    assert value_of(page, "new-instructions").strip() == "Pay at the counter"
    db.session.expire_all()
    assert db.session.query(PaymentMethod).count() == count


def test_a_custom_method_edit_keeps_what_was_typed(owner_client):
    from domain.store import save_custom_payment_method

    mid = save_custom_payment_method(name="Cash", instructions="Pay the driver.").id
    before = row(PaymentMethod, id=mid)
    html, page = refused(owner_client.post(f"/settings/payments/{mid}", {
        "name": HOSTILE, "instructions": "Cash only", "deadline_days": "999"}))
    assert value_of(page, f"pm{mid}-name") == HOSTILE
    assert value_of(page, f"pm{mid}-deadline_days") == "999"
    error_beside(page, f"pm{mid}-deadline_days", "between 1 and 60")
    assert '<details open>' in html or "<details  open>" in html or 'details open' in html
    assert row(PaymentMethod, id=mid) == before


# ------------------------------------------------------------------ shipping methods


@pytest.mark.parametrize("fee, words", [("-5", "positive amount"), ("abc", "positive amount")])
def test_a_new_shipping_method_keeps_what_was_typed(owner_client, fee, words):
    count = db.session.query(ShippingMethod).count()
    html, page = refused(owner_client.post("/settings/shipping", {
        "name": HOSTILE, "kind": "pickup", "fee": fee}))
    assert value_of(page, "new-name") == HOSTILE and value_of(page, "new-fee") == fee
    assert page.by_id["new-kind"]["tag"] == "select"
    assert '<option selected value="pickup">' in html or '<option value="pickup" selected' in html
    error_beside(page, "new-fee", words)
    db.session.expire_all()
    assert db.session.query(ShippingMethod).count() == count


def test_a_shipping_method_edit_keeps_what_was_typed(owner_client):
    method = db.session.query(ShippingMethod).order_by(ShippingMethod.id).first()
    before = row(ShippingMethod, id=method.id)
    p = f"m{method.id}"
    html, page = refused(owner_client.post(f"/settings/shipping/{method.id}", {
        f"{p}-name": LONG, f"{p}-kind": method.kind, f"{p}-fee": "-1"}))
    assert value_of(page, f"{p}-name") == LONG and value_of(page, f"{p}-fee") == "-1"
    error_beside(page, f"{p}-name", "at most 80 characters")
    html, page = refused(owner_client.post(f"/settings/shipping/{method.id}", {
        f"{p}-name": "SF 順豐", f"{p}-kind": method.kind, f"{p}-fee": "-1"}))
    assert value_of(page, f"{p}-name") == "SF 順豐"
    error_beside(page, f"{p}-fee", "positive amount")
    assert row(ShippingMethod, id=method.id) == before


# ------------------------------------------------------------------ staff


def users():
    db.session.expire_all()
    return sorted((u.email, u.role, u.active) for u in db.session.query(User))


@pytest.mark.parametrize("data, bad, words", [
    ({"email": "not-an-email", "name": HOSTILE, "password": "long enough pw 1"}, "new-email",
     "valid email"),
    ({"email": "OWNER@shop.test", "name": "陳大文", "password": "long enough pw 1"}, "new-email",
     "already exists"),
    ({"email": "new@example.com", "name": "陳大文", "password": "short"}, "new-password",
     "at least 10"),
    ({"email": "", "name": LONG, "password": "long enough pw 1"}, "new-email", "required"),
])
def test_new_staff_keeps_what_was_typed_but_not_the_password(app, owner, data, bad, words):
    client = Client(app).login(owner)
    before = users()
    html, page = refused(client.post("/settings/staff", {**data, "role": "owner"}))
    assert value_of(page, "new-email") == data["email"]
    assert value_of(page, "new-name") == data["name"]
    assert '<option selected value="owner">' in html or '<option value="owner" selected' in html
    error_beside(page, bad, words)
    # the password is never written back; a note beside it asks for it again
    assert data["password"] not in html and value_of(page, "new-password") == ""
    described = page.by_id["new-password"]["attrs"]["aria-describedby"].split()
    assert "new-password-retype" in described
    assert "Type it again" in page.by_id["new-password-retype"]["text"]
    assert users() == before


def test_the_last_owner_cannot_be_demoted_and_the_row_says_why(owner_client, owner):
    before = users()
    p = f"u{owner.id}"
    html, page = refused(owner_client.post(f"/settings/staff/{owner.id}", {
        f"{p}-role": "staff", f"{p}-active": "y"}))
    assert '<option selected value="staff">' in html or '<option value="staff" selected' in html
    error_beside(page, f"{p}-role", "at least one active owner")
    assert users() == before
    html, page = refused(owner_client.post(f"/settings/staff/{owner.id}", {f"{p}-role": HOSTILE}))
    error_beside(page, f"{p}-role", "valid choice")
    assert users() == before


def test_staff_cannot_use_any_settings_form(staff_client, owner):
    before_users, before_store = users(), row(StoreSettings, id=1)
    mid = method_id("fps")
    before_fps = row(PaymentMethod, id=mid)
    for url, data in [("/settings/staff", {"email": "x@example.com", "password": "long enough pw"}),
                      (f"/settings/staff/{owner.id}", {f"u{owner.id}-role": "staff"}),
                      ("/settings/store", store_form(name="Hijacked")),
                      (f"/settings/payments/{mid}/details", {"fps_id": "1234567"}),
                      ("/settings/payments", {"name": "Evil", "instructions": "x"}),
                      ("/settings/shipping", {"name": "Evil", "kind": "pickup", "fee": "1"}),
                      ("/settings/whatsapp/credentials", {"phone_number_id": "12345"})]:
        for htmx in (False, True):
            assert staff_client.post(url, data, htmx=htmx).status_code == 403, url
    assert users() == before_users and row(StoreSettings, id=1) == before_store
    assert row(PaymentMethod, id=mid) == before_fps


# ------------------------------------------------------------------ WhatsApp credentials


@pytest.mark.parametrize("htmx", [False, True])
def test_whatsapp_credentials_keep_the_ids_but_never_the_secrets(owner_client, htmx):
    from domain.models import WhatsAppConfig

    def config():
        db.session.expire_all()
        c = db.session.get(WhatsAppConfig, 1)
        return None if c is None else {k.name: getattr(c, k.name) for k in c.__table__.columns}

    owner_client.get("/settings/whatsapp")  # the page makes the settings row
    before = config()
    assert before is not None
    token, secret = "EAAG-secret-token-42", "app-secret-99"
    html, page = refused(owner_client.post("/settings/whatsapp/credentials", {
        "phone_number_id": HOSTILE, "business_account_id": "1234567890",
        "access_token": token, "app_secret": secret}, htmx=htmx))
    assert value_of(page, "wa-phone_number_id") == HOSTILE
    assert value_of(page, "wa-business_account_id") == "1234567890"
    error_beside(page, "wa-phone_number_id", "5 to 30 digits")
    assert token not in html and secret not in html
    for name in ("wa-access_token", "wa-app_secret"):
        assert value_of(page, name) == ""
        assert f"{name}-retype" in page.by_id[name]["attrs"]["aria-describedby"].split()
    assert config() == before


# ------------------------------------------------------------------ your password


def test_a_wrong_current_password_stands_beside_it_and_nothing_is_echoed(app, owner):
    client = Client(app).login(owner)
    hash_before = row(User, id=owner.id)["password_hash"]
    response = client.post("/account/password", {
        "current": "not the password", "new": "a brand new pw 1", "confirm": "a brand new pw 1"})
    html, page = refused(response)
    error_beside(page, "pw-current", "current password is wrong")
    assert "not the password" not in html and "a brand new pw 1" not in html
    assert "pw-new-retype" in page.by_id["pw-new"]["attrs"]["aria-describedby"].split()
    html, page = refused(client.post("/account/password", {
        "current": PASSWORD, "new": "short", "confirm": "short"}))
    error_beside(page, "pw-new", "at least 10")
    assert row(User, id=owner.id)["password_hash"] == hash_before
