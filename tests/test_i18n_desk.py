"""Languages on the desk (issue 8): who reads which language, the staff member's
and the store's language forms, and the desk shell / sign-in / settings pages
in Traditional Chinese."""

from __future__ import annotations

import re

import pytest

from domain.accounts import LoginThrottled, set_locale
from domain.db import db
from domain.errors import ValidationError
from domain.models import User
from domain.store import get_settings
from tests.conftest import PASSWORD, Client
from tests.test_pages_in_chinese import ALLOWED, _data_values, _default_words, english_left

ZH_BROWSER = {"Accept-Language": "zh-HK,zh;q=0.9,en;q=0.5"}
EN_BROWSER = {"Accept-Language": "en-GB,en;q=0.9"}


def _lang(response) -> str:
    match = re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True))
    assert match, "no <html lang>"
    return match.group(1)


def _store_language(value: str) -> None:
    settings = get_settings()
    settings.language = value
    db.session.commit()


def _user_locale(user, value):
    db.session.get(User, user.id).locale = value
    db.session.commit()


def _locale_of(user) -> str | None:
    db.session.expire_all()
    return db.session.get(User, user.id).locale


# ------------------------------------------------------------------ who reads which language


def test_the_store_language_is_the_staff_default(app, owner):
    _store_language("zh_Hant_HK")
    client = Client(app).login(owner)
    page = client.get("/orders", headers=EN_BROWSER)
    assert _lang(page) == "zh-Hant-HK"
    assert "登出" in page.get_data(as_text=True)  # the top bar's "Sign out"
    _store_language("en")
    page = client.get("/orders", headers=ZH_BROWSER)
    assert _lang(page) == "en" and ">Sign out<" in page.get_data(as_text=True)


def test_the_staff_members_language_beats_the_stores(app, owner, staff):
    _store_language("en")
    _user_locale(staff, "zh_Hant_HK")
    staff_page = Client(app).login(staff).get("/orders", headers=EN_BROWSER)
    owner_page = Client(app).login(owner).get("/orders", headers=ZH_BROWSER)
    assert _lang(staff_page) == "zh-Hant-HK" and "登出" in staff_page.get_data(as_text=True)
    assert _lang(owner_page) == "en"
    _store_language("zh_Hant_HK")
    _user_locale(staff, "en")
    assert _lang(Client(app).login(staff).get("/orders", headers=ZH_BROWSER)) == "en"


def test_accept_language_decides_only_for_signed_out_pages(app, owner):
    _store_language("en")
    client = Client(app)
    login = client.get("/login", headers=ZH_BROWSER)
    assert _lang(login) == "zh-Hant-HK" and "登入訂單後台" in login.get_data(as_text=True)
    assert _lang(client.get("/login", headers=EN_BROWSER)) == "en"
    # No Accept-Language at all: the store's language.
    _store_language("zh_Hant_HK")
    assert _lang(client.get("/login")) == "zh-Hant-HK"
    _store_language("en")
    # Signed in, the browser's wish no longer counts: the store's (or their own) language does.
    client.login(owner)
    assert _lang(client.get("/account", headers=ZH_BROWSER)) == "en"


def test_error_pages_follow_the_reader(app, owner):
    _store_language("en")
    page = Client(app).get("/orders/NOPE", headers=ZH_BROWSER, follow_redirects=True)
    assert "請先登入" in page.get_data(as_text=True)  # login_message, localized
    missing = Client(app).login(owner)
    _user_locale(owner, "zh_Hant_HK")
    page = missing.get("/no-such-page")
    text = page.get_data(as_text=True)
    assert page.status_code == 404 and "找不到" in text and "錯誤 404" in text
    assert "Not found" not in text


# ------------------------------------------------------------------ the /account language form


@pytest.mark.parametrize("htmx", [False, True])
def test_account_language_form_saves_and_redraws_in_the_new_language(app, owner, htmx):
    _store_language("en")
    client = Client(app).login(owner)
    page = client.get("/account").get_data(as_text=True)
    assert "Store default (English)" in page and "繁體中文" in page
    response = client.post("/account/language", {"locale": "zh_Hant_HK"}, htmx=htmx)
    if htmx:
        # The whole page is drawn again (top bar included), not a fragment.
        assert response.status_code == 204 and response.headers["HX-Redirect"] == "/account"
    else:
        assert response.status_code == 302 and response.headers["Location"].endswith("/account")
    assert _locale_of(owner) == "zh_Hant_HK"
    page = client.get("/account")
    text = page.get_data(as_text=True)
    assert _lang(page) == "zh-Hant-HK" and "已儲存語言。" in text and "你的帳戶" in text
    assert "商店預設（English）" in text
    # Back to the store's language ("" = none of their own).
    client.post("/account/language", {"locale": ""}, htmx=htmx)
    assert _locale_of(owner) is None
    assert _lang(client.get("/account")) == "en"


@pytest.mark.parametrize("hostile", ["fr", "zh-CN", "EN", "zh_Hant_HK\x00", "x" * 5000,
                                     "<script>alert(1)</script>"])
def test_an_unknown_language_is_refused_and_changes_nothing(app, owner, hostile):
    _user_locale(owner, "en")
    client = Client(app).login(owner)
    response = client.post("/account/language", {"locale": hostile})
    assert response.status_code in (400, 422)
    text = response.get_data(as_text=True)
    assert "Choose one of the languages offered." in text or "at most" in text
    assert "<script>alert(1)" not in text
    assert _locale_of(owner) == "en"


def test_the_account_language_form_needs_csrf(app, owner):
    client = Client(app).login(owner)
    response = client.post("/account/language", {"locale": "zh_Hant_HK"}, csrf=False)
    assert response.status_code == 400
    assert _locale_of(owner) is None


def test_set_locale_domain_rules(app, owner):
    assert set_locale(owner.id, "zh_Hant_HK").locale == "zh_Hant_HK"
    assert set_locale(owner.id, "").locale is None
    with pytest.raises(ValidationError) as refused:
        set_locale(owner.id, "de")
    assert str(refused.value) == "Choose one of the languages offered."
    assert _locale_of(owner) is None


# ------------------------------------------------------------------ the store's language


def _store_form(client, **changes):
    settings = get_settings()
    data = {"name": settings.name, "address": settings.address or "", "phone": settings.phone or "",
            "email": settings.email or "", "notification_email": settings.notification_email or "",
            "currency": settings.currency, "timezone": settings.timezone, "plan": settings.plan,
            "order_prefix": settings.order_prefix or "", "payment_deadline_days": "",
            "reminder_lead_hours": "", "language": settings.language}
    data.update(changes)
    return data


@pytest.mark.parametrize("htmx", [False, True])
def test_store_language_setting_saves_and_redraws(app, owner, htmx):
    _store_language("en")
    client = Client(app).login(owner)
    page = client.get("/settings/store").get_data(as_text=True)
    assert 'name="language"' in page and "繁體中文" in page
    response = client.post("/settings/store", _store_form(client, language="zh_Hant_HK"), htmx=htmx)
    if htmx:
        assert response.status_code == 204 and response.headers["HX-Redirect"] == "/settings/store"
    else:
        assert response.status_code == 302
    db.session.expire_all()
    assert get_settings().language == "zh_Hant_HK"
    page = client.get("/settings/store")
    assert _lang(page) == "zh-Hant-HK" and "已儲存商店資料。" in page.get_data(as_text=True)
    # Saving without changing the language is the ordinary redirect, also for htmx.
    response = client.post("/settings/store", _store_form(client, phone="2345 6789"), htmx=htmx)
    assert response.status_code == 302


@pytest.mark.parametrize("htmx", [False, True])
@pytest.mark.parametrize("hostile", ["fr", "zh-CN", "", "en\r\n"])
def test_an_unknown_store_language_is_refused_and_changes_nothing(app, owner, hostile, htmx):
    _store_language("en")
    client = Client(app).login(owner)
    response = client.post("/settings/store", _store_form(client, language=hostile, phone="999"),
                           htmx=htmx)
    assert response.status_code == 422
    assert "Choose one of the languages offered." in response.get_data(as_text=True)
    db.session.expire_all()
    assert get_settings().language == "en" and get_settings().phone != "999"


def test_staff_cannot_change_the_store_language(app, staff):
    client = Client(app).login(staff)
    assert client.post("/settings/store", {"language": "zh_Hant_HK"}).status_code == 403
    db.session.expire_all()
    assert get_settings().language == "en"


# ------------------------------------------------------------------ refusals in Chinese


def test_a_wrong_password_and_the_throttle_read_in_chinese(app, owner):
    _store_language("zh_Hant_HK")
    client = Client(app)
    page = client.get("/login", headers=ZH_BROWSER)
    token = client.token_from(page.get_data(as_text=True))
    response = client.post("/login", {"email": owner.email, "password": "wrong password!",
                                      "csrf_token": token}, csrf=False, headers=ZH_BROWSER)
    assert response.status_code == 401 and "電郵或密碼不正確。" in response.get_data(as_text=True)


def test_the_throttle_message_has_plural_forms(app):
    from flask_babel import force_locale

    from blueprints.i18n import translate_error

    with app.test_request_context("/"):
        with force_locale("en"):
            assert translate_error(LoginThrottled(1)).endswith("Try again in 1 minute.")
            assert translate_error(LoginThrottled(4)).endswith("Try again in 4 minutes.")
        with force_locale("zh_Hant_HK"):
            assert translate_error(LoginThrottled(4)) == "登入失敗次數太多。請在 4 分鐘後再試。"


def test_a_wrong_current_password_on_the_account_page_reads_in_chinese(app, owner):
    _user_locale(owner, "zh_Hant_HK")
    client = Client(app).login(owner)
    response = client.post("/account/password", {"current": "not it at all", "new": "a new password 1",
                                                  "confirm": "a new password 1"})
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and "目前密碼不正確。" in text
    assert "wrong" not in text


def test_a_settings_refusal_reads_in_chinese_with_its_field_translated(app, owner):
    _user_locale(owner, "zh_Hant_HK")
    client = Client(app).login(owner)
    response = client.post("/settings/store", _store_form(client, email="not-an-email"))
    text = response.get_data(as_text=True)
    assert response.status_code == 422 and "商店電郵必須是有效的電郵地址。" in text


def test_built_in_method_names_are_translated_but_a_merchants_are_not(app, owner):
    from domain.store import save_custom_payment_method

    save_custom_payment_method(name="Cash at Kwun Tong", instructions="Pay the driver.")
    _user_locale(owner, "zh_Hant_HK")
    text = Client(app).login(owner).get("/settings/payments").get_data(as_text=True)
    assert "銀行轉帳" in text and "Bank Transfer" not in text
    assert "Cash at Kwun Tong" in text and "Pay the driver." in text


# ------------------------------------------------------------------ whole pages in Chinese


MY_PAGES = ["/account", "/settings/store", "/settings/payments", "/settings/shipping",
            "/settings/staff", "/settings/backups", "/no-such-page"]


def test_desk_shell_account_and_settings_pages_read_in_chinese(app, owner, staff):
    _store_language("zh_Hant_HK")
    client = Client(app).login(owner)
    Client(app).login(staff)  # a second person with a device, for the staff page's counts
    allowed = ALLOWED | (_data_values() - _default_words())
    for url in MY_PAGES:
        for htmx in (False, True):
            response = client.get(url, htmx=htmx)
            assert response.status_code in (200, 404), url
            left = english_left(response.get_data(as_text=True), allowed)
            assert not left, f"English on {url}{' (htmx)' if htmx else ''}: {sorted(set(left))}"
    login = Client(app).get("/login", headers=ZH_BROWSER)
    assert not english_left(login.get_data(as_text=True), allowed)


def test_the_check_sees_english_on_an_english_account_page(app, owner):
    """The page check above is not vacuous: the English page fails it."""
    client = Client(app).login(owner)
    allowed = ALLOWED | (_data_values() - _default_words())
    assert "Signed" in english_left(client.get("/account").get_data(as_text=True), allowed)


def test_password_check_still_signs_in_in_english(app, owner):
    client = Client(app)
    page = client.get("/login", headers=EN_BROWSER).get_data(as_text=True)
    assert "Sign in to the order desk." in page and PASSWORD not in page
