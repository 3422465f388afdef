"""Typed payment details (issue 13): validation, readiness, the customer's macro, the email."""

from __future__ import annotations

import pytest
from flask import render_template_string
from sqlalchemy import select

from domain import payment_details as pd
from domain import payments
from domain.db import db
from domain.errors import ValidationError
from domain.models import OutboxMessage, PaymentMethod, Product, Variant
from domain.notify.email import gettext, in_language, render_email
from domain.store import save_custom_payment_method, set_payment_method_enabled


def method(code: str) -> PaymentMethod:
    return db.session.scalar(select(PaymentMethod).where(PaymentMethod.code == code))


def emptied(code: str) -> PaymentMethod:
    """A built-in manual method as a fresh store has it: off, nothing filled in."""
    m = method(code)
    for name in pd.ALL_FIELDS:
        setattr(m, name, "")
    m.enabled = False
    db.session.commit()
    return m


def refusal(call) -> pd.DetailsRefused:
    with pytest.raises(pd.DetailsRefused) as info:
        call()
    return info.value


# ------------------------------------------------------------------ cleaning


@pytest.mark.parametrize("raw, stored", [
    ("1234567", "1234567"), (" 123456789 ", "123456789"), ("12-345-678 9", "123456789"),
    ("9123 4567", "+852 9123 4567"), ("+852 6123-4567", "+852 6123 4567"),
    ("85251234567", "+852 5123 4567"), ("Pay@CookieLab.HK", "pay@cookielab.hk"),
])
def test_fps_id_accepts_ids_phones_and_emails_and_normalises(raw, stored):
    assert pd.clean_fps_id(raw) == stored


@pytest.mark.parametrize("raw", [
    "12345", "123456", "1234567890", "abc1234", "12345６7", "+852 1234 5678", "+44 7700 900123",
    "=1234567", "1234567\x00", "9123\n4567", "shop@", "<script>@x.hk", "a" * 121,
    "javascript:alert(1)",
])
def test_fps_id_refuses_what_no_bank_app_takes(raw):
    with pytest.raises(ValidationError):
        pd.clean_fps_id(raw)


@pytest.mark.parametrize("raw, stored", [
    ("004-123-456789-001", "004-123-456789-001"), ("004 123 456789", "004 123 456789"),
    ("  012 - 345678  ", "012-345678"), ("123456", "123456"), ("1" * 20, "1" * 20),
])
def test_account_number_keeps_its_groups(raw, stored):
    assert pd.clean_account_number(raw) == stored


@pytest.mark.parametrize("raw", ["12345", "1" * 30, "12a456", "004--123456", "-123456",
                                 "123 456\x07", "１２３４５６７", "=1234567", "1234567+1"])
def test_account_number_refuses_short_long_and_letters(raw):
    with pytest.raises(ValidationError):
        pd.clean_account_number(raw)


@pytest.mark.parametrize("raw, stored", [
    ("https://payme.hsbc/cookielab", "https://payme.hsbc/cookielab"),
    ("payme.hsbc/cookielab", "https://payme.hsbc/cookielab"),
    ("HTTPS://PayMe.HSBC/CookieLab", "https://payme.hsbc/CookieLab"),
    ("https://qr.payme.hsbc.com.hk/2/C9AbCdEf", "https://qr.payme.hsbc.com.hk/2/C9AbCdEf"),
])
def test_payme_link_accepts_real_payme_links(raw, stored):
    assert pd.clean_payme_link(raw) == stored


@pytest.mark.parametrize("raw", [
    "javascript:alert(1)", "JavaScript:alert(document.cookie)//payme.hsbc/x",
    "data:text/html,<script>alert(1)</script>", "http://payme.hsbc/cookielab",
    "https://evil.example/payme.hsbc", "https://payme.hsbc.evil.example/x",
    "https://payme.hsbc@evil.example/x", "https://evil.example\\@payme.hsbc/x",
    "https://payme.hsbc:8080/x", "https://payme.hsbc/", "https://payme.hsbc",
    "https://payme.hsbc/a b", "https://payme.hsbc/x\x00", "https://xn--pyme-loa.hsbc/x",
    "https://payme.hsbc/" + "a" * 300, "ftp://payme.hsbc/x", "https:payme.hsbc/x",
])
def test_payme_link_refuses_other_schemes_and_hosts(raw):
    with pytest.raises(ValidationError):
        pd.clean_payme_link(raw)


@pytest.mark.parametrize("raw", ["Cookie\x00Lab", "Cookie\u202eLab", "a" * 121, "=HYPERLINK(1)",
                                 "@SUM(A1)"])
def test_names_refuse_control_characters_length_and_formulas(raw):
    with pytest.raises(ValidationError):
        pd.clean_name(raw)


def test_names_keep_chinese_and_collapse_spaces():
    assert pd.clean_name("  曲奇   實驗室  有限公司 ") == "曲奇 實驗室 有限公司"


# ------------------------------------------------------------------ saving and readiness


def test_fresh_manual_methods_are_not_ready_and_say_what_is_missing(app):
    fps, bank, payme = emptied("fps"), emptied("bank_transfer"), emptied("payme")
    assert pd.missing(fps) == ["FPS ID", "Account name"]
    assert pd.missing(bank) == ["Bank name", "Account name", "Account number"]
    assert pd.missing(payme) == ["PayMe link"]
    assert not any(pd.is_ready(m) for m in (fps, bank, payme))
    assert pd.is_ready(method("credit_card"))
    assert pd.details(fps) == []


@pytest.mark.parametrize("code, message", [
    ("fps", "Fill in the FPS ID and account name before turning FPS on."),
    ("bank_transfer", "Fill in the bank name, account name and account number before "
                      "turning Bank Transfer on."),
    ("payme", "Fill in the PayMe link before turning PayMe on."),
])
def test_enabling_is_refused_until_the_details_are_filled(app, code, message):
    m = emptied(code)
    with pytest.raises(ValidationError) as info:
        set_payment_method_enabled(m.id, True)
    assert str(info.value) == message
    assert method(code).enabled is False


def test_enabling_works_once_filled_and_half_filled_is_still_refused(app):
    fps = emptied("fps")
    pd.save_payment_details(fps.id, fps_id="1234567")
    with pytest.raises(ValidationError):
        set_payment_method_enabled(fps.id, True)
    pd.save_payment_details(fps.id, payee_name="Cookie Lab Ltd")
    assert pd.is_ready(method("fps"))
    set_payment_method_enabled(fps.id, True)
    assert method("fps").enabled is True
    # and turning it off needs nothing
    set_payment_method_enabled(fps.id, False)
    assert method("fps").enabled is False


def test_a_refusal_saves_nothing_and_names_every_bad_field(app):
    bank = emptied("bank_transfer")
    exc = refusal(lambda: pd.save_payment_details(
        bank.id, bank_name="HSBC", payee_name="Cookie\x07Lab", account_number="12-34",
        instructions="Call us", deadline_days="-3"))
    assert set(exc.errors) == {"payee_name", "account_number", "deadline_days"}
    db.session.expire_all()
    bank = method("bank_transfer")
    assert (bank.bank_name, bank.payee_name, bank.account_number, bank.instructions) == (
        "", "", "", "")


def test_saved_details_are_normalised_and_shown_in_order(app):
    fps = emptied("fps")
    pd.save_payment_details(fps.id, fps_id="9123-4567", payee_name=" Cookie  Lab ",
                            instructions="  Questions? WhatsApp us.  ", deadline_days="3")
    fps = method("fps")
    assert (fps.fps_id, fps.payee_name, fps.instructions, fps.deadline_days) == (
        "+852 9123 4567", "Cookie Lab", "Questions? WhatsApp us.", 3)
    rows = pd.details(fps)
    assert [tuple(r) for r in rows] == [("FPS phone number", "+852 9123 4567", True),
                                       ("Account name", "Cookie Lab", True)]
    assert rows[0].copy_text == "91234567"  # what a banking app's phone field takes


def test_an_enabled_method_cannot_lose_its_details(app):
    fps = method("fps")  # filled and on (tests/conftest.py)
    assert fps.enabled and pd.is_ready(fps)
    exc = refusal(lambda: pd.save_payment_details(fps.id, fps_id="", payee_name="X"))
    assert set(exc.errors) == {"fps_id"}
    db.session.expire_all()
    assert (method("fps").fps_id, method("fps").payee_name) == ("1234567", "Cookie Lab Ltd")


def test_only_a_methods_own_fields_and_only_built_in_manual_methods(app):
    fps = method("fps")
    with pytest.raises(ValidationError):
        pd.save_payment_details(fps.id, payme_link="https://payme.hsbc/x")
    with pytest.raises(ValidationError):
        pd.save_payment_details(method("credit_card").id, fps_id="1234567")
    custom = save_custom_payment_method(name="Cash", instructions="Pay at the counter.")
    with pytest.raises(ValidationError):
        pd.save_payment_details(custom.id, fps_id="1234567")


def test_custom_methods_are_ready_with_instructions_and_built_ins_note_is_optional(app):
    custom = save_custom_payment_method(name="Cash", instructions="Pay at the counter.")
    assert pd.is_ready(custom) and pd.details(custom) == []
    with pytest.raises(ValidationError):
        save_custom_payment_method(name="Cash", instructions="  ", method_id=custom.id)
    fps = method("fps")
    save_custom_payment_method(name="FPS", instructions="", method_id=fps.id)
    assert method("fps").instructions == ""


# ------------------------------------------------------------------ what customers see


PAGE = ('{% from "storefront/_pay_details.html" import pay_details %}'
        '<html><body>{{ pay_details(m, 23000, "HKD", ref) }}</body></html>')


def rendered(app, m, ref="SD10001") -> str:
    with app.test_request_context("/"):
        return render_template_string(PAGE, m=m, ref=ref)


def test_macro_shows_each_detail_amount_and_reference_with_copy_buttons(app):
    html = rendered(app, method("fps"))
    assert "1234567" in html and "Cookie Lab Ltd" in html
    assert 'data-copy="1234567"' in html and 'data-copy="Cookie Lab Ltd"' in html
    assert "HK$230.00" in html and 'data-copy="230.00"' in html
    assert 'data-copy="SD10001"' in html
    assert "Please write" in html and "reference or message" in html
    assert 'aria-live="polite"' in html and "onclick" not in html and "<script" not in html


def test_macro_escapes_hostile_details(app):
    fps = method("fps")
    fps.payee_name = '<script>alert("x")</script>'
    fps.instructions = '<img src=x onerror=alert(1)>\nline two'
    db.session.commit()
    html = rendered(app, fps, ref='"><script>1</script>')
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x" in html
    assert 'data-copy="&#34;&gt;&lt;script&gt;1&lt;/script&gt;"' in html


def test_macro_shows_the_payme_link_as_a_button(app):
    html = rendered(app, method("payme"))
    assert 'href="https://payme.hsbc/cookielab"' in html
    assert 'target="_blank"' in html and 'rel="noopener noreferrer"' in html


def test_macro_shows_a_custom_methods_instructions_escaped_and_nothing_for_online(app):
    custom = save_custom_payment_method(name="Cash", instructions="Counter <b>2</b>\nMong Kok")
    html = rendered(app, custom)
    assert "Counter &lt;b&gt;2&lt;/b&gt;\nMong Kok" in html and "HK$230.00" in html
    assert rendered(app, method("credit_card")).count("pay-details") == 0


def test_payment_info_carries_details_amount_and_reference(app, make_order):
    order = make_order(payment="bank_transfer")
    info = payments.payment_info(order)
    assert [d.value for d in info.details] == ["HSBC", "Cookie Lab Ltd", "004-123-456789-001"]
    assert (info.amount_cents, info.reference, info.currency) == (
        order.total_cents, order.number, "HKD")
    assert payments.payment_info(make_order(payment="credit_card")) is None


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_order_email_shows_the_fps_id_and_the_reference(app, make_order, locale):
    order = make_order(payment="fps", locale=locale)
    message = db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.order_id == order.id, OutboxMessage.kind == "order_placed",
        OutboxMessage.audience == "customer")).one()
    email = render_email(message)
    for body in (email.text, email.html):
        assert "1234567" in body and "Cookie Lab Ltd" in body and order.number in body
    with in_language(locale):
        label = gettext("%(label)s:", label=gettext("FPS ID"))
        sentence = gettext("Please write %(reference)s in the transfer’s reference or message, "
                           "so the shop can match your payment.", reference=order.number)
    # plain text: an aligned "FPS ID:  1234567" row, and the sentence asking for the reference
    lines = [ln for ln in email.text.splitlines() if "1234567" in ln]
    assert lines and lines[0].startswith(label)
    assert sentence.split()[0] in email.text and order.number in sentence


# ------------------------------------------------------------------ the shop's listing


def test_store_listing_and_quote_leave_out_inactive_variants(app, make_variant):
    kept = make_variant(name="Shortbread", variant="Tin")
    gone = make_variant(name="Shortbread", variant="Old tin")
    # both on the same product
    gone_row = db.session.get(Variant, gone.id)
    gone_row.product_id = kept.product_id
    gone_row.active = False
    only = make_variant(name="Retired box", variant="Box")
    db.session.get(Variant, only.id).active = False
    db.session.commit()
    catalog = payments.sellable_catalog()
    names = {p.name: [v.id for v in p.variants] for p in catalog}
    assert names.get("Shortbread") == [kept.id]
    assert "Retired box" not in names
    quote = payments.quote_items({kept.id: 1, gone.id: 2})
    assert [line.variant.id for line in quote.lines] == [kept.id]
    with pytest.raises(ValidationError):
        payments.check_can_add(gone.id, 1)
    assert db.session.get(Product, only.product_id) is not None
