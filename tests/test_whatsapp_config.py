"""WhatsApp channel settings (issue 10): encrypted credentials, validation with hostile
input, activation, per-type switches and the monthly cap."""

from __future__ import annotations

import dataclasses

import pytest

from domain.db import db
from domain.errors import ValidationError
from domain.models import WhatsAppConfig
from domain.notify import whatsapp_config as wc

TOKEN = "EAAGm0PX4ZCpsBA" + "x" * 40
SECRET = "0123456789abcdef0123456789abcdef"


def _row() -> WhatsAppConfig:
    db.session.expire_all()
    return db.session.get(WhatsAppConfig, 1)


def _save(**overrides):
    values = dict(phone_number_id="106540352242922", business_account_id="102290129340398",
                  access_token=TOKEN, app_secret=SECRET)
    values.update(overrides)
    wc.save_credentials(**values)


def test_get_config_creates_the_row_off_with_a_verify_token(app):
    config = wc.get_config()
    assert config.id == 1 and not config.active and not wc.is_active()
    assert len(config.verify_token) >= 20
    assert wc.get_config().verify_token == config.verify_token  # stable


def test_encryption_round_trip_and_another_secret_key(app):
    token = wc.encrypt_secret("s3cr3t-ä")
    assert "s3cr3t" not in token
    assert wc.decrypt_secret(token) == "s3cr3t-ä"
    assert wc.encrypt_secret("same") != wc.encrypt_secret("same")  # Fernet: a fresh IV each time
    assert wc.decrypt_secret("") == ""
    app.config["SECRET_KEY"] = "another-secret"
    with pytest.raises(ValidationError) as refused:
        wc.decrypt_secret(token)
    assert "Re-enter the access token" in str(refused.value)
    with pytest.raises(ValidationError):
        wc.decrypt_secret("not a fernet token at all")


def test_saved_secrets_are_encrypted_and_never_in_the_view(app):
    _save()
    row = _row()
    assert TOKEN not in row.access_token_enc and SECRET not in row.app_secret_enc
    assert wc.access_token() == TOKEN and wc.app_secret() == SECRET
    view = wc.view()
    rendered = repr(dataclasses.asdict(view))
    assert TOKEN not in rendered and SECRET not in rendered
    assert row.access_token_enc not in rendered
    assert view.has_access_token and view.has_app_secret and view.complete
    assert view.phone_number_id == "106540352242922"


def test_changed_secret_key_asks_to_re_enter_and_refuses_activation(app):
    _save()
    app.config["SECRET_KEY"] = "rotated"
    view = wc.view()  # the page still renders
    assert view.has_access_token and not view.secrets_readable and not view.complete
    with pytest.raises(ValidationError, match="Re-enter"):
        wc.access_token()
    with pytest.raises(ValidationError, match="Re-enter"):
        wc.activate()
    assert not _row().active
    _save()  # re-entered under the new key
    wc.activate()
    assert wc.is_active()


def test_none_or_blank_keeps_the_saved_secrets(app):
    _save()
    _save(phone_number_id="2222222222", access_token=None, app_secret="   ")
    assert wc.access_token() == TOKEN and wc.app_secret() == SECRET
    assert _row().phone_number_id == "2222222222"


HOSTILE_IDS = ["", "   ", "1234", "1" * 31, "12345\x00", "12 345 678", "１２３４５６",
               "123456; DROP TABLE orders", "=1+2345678", "9" * 10000, None, 12345678]


@pytest.mark.parametrize("value", HOSTILE_IDS)
def test_ids_refused_and_nothing_saved(app, value):
    _save()
    before = _row().phone_number_id
    with pytest.raises(ValidationError) as refused:
        _save(phone_number_id=value, access_token="A" * 30)
    assert refused.value.input_name == "phone_number_id"
    assert "Phone number ID" in str(refused.value)
    assert _row().phone_number_id == before and wc.access_token() == TOKEN
    with pytest.raises(ValidationError) as refused:
        _save(business_account_id=value)
    assert refused.value.input_name == "business_account_id"


HOSTILE_TOKENS = ["short", "EAAG with spaces inside it xx", "EAAG\x07" + "x" * 30,
                  "EAAG\n" + "x" * 30, "x" * 1001, "x" * 10000, "權杖" * 15,
                  "' OR 1=1 -- ; DROP TABLE whatsapp_config", 12345]


@pytest.mark.parametrize("value", HOSTILE_TOKENS)
def test_hostile_access_tokens_refused_and_nothing_saved(app, value):
    _save()
    with pytest.raises(ValidationError) as refused:
        _save(phone_number_id="3333333333", access_token=value)
    assert refused.value.input_name == "access_token"
    assert _row().phone_number_id == "106540352242922" and wc.access_token() == TOKEN


@pytest.mark.parametrize("value", ["abc", "0123456789abcde", "g" * 201, "0123456789abcdef\x00",
                                   "0123456789 abcdef", "秘密" * 10, "x" * 10000,
                                   "0123456789abcdef'--"])
def test_hostile_app_secrets_refused(app, value):
    _save()
    with pytest.raises(ValidationError) as refused:
        _save(app_secret=value)
    assert refused.value.input_name == "app_secret"
    assert wc.app_secret() == SECRET


def test_tokens_at_the_limits_are_accepted(app):
    _save(access_token="!" + "~" * 19, app_secret="A" * 16)
    assert wc.access_token() == "!" + "~" * 19
    _save(access_token="t" * 1000, app_secret="Z9" * 100, phone_number_id="12345",
          business_account_id="1" * 30)
    assert len(wc.access_token()) == 1000


def test_activation_refused_without_complete_credentials(app):
    with pytest.raises(ValidationError, match="before turning WhatsApp on"):
        wc.activate()
    wc.save_credentials(phone_number_id="106540352242922", business_account_id="102290129340398",
                        access_token=TOKEN)  # no app secret yet
    with pytest.raises(ValidationError):
        wc.activate()
    assert not wc.is_active()
    _save()
    wc.activate()
    assert wc.is_active()
    wc.deactivate()
    assert not wc.is_active()


def test_sandbox_credentials_and_api_base(app):
    app.config["WHATSAPP_SANDBOX_SERVER"] = True
    app.config["PUBLIC_URL"] = "http://127.0.0.1:5999/"
    assert wc.api_base() == "https://graph.facebook.com"
    wc.use_sandbox()
    wc.activate()
    assert wc.is_active() and _row().sandbox
    assert wc.access_token() == wc.SANDBOX_TOKEN and wc.app_secret() == wc.SANDBOX_APP_SECRET
    assert wc.api_base() == "http://127.0.0.1:5999/_sandbox/whatsapp"
    # Real credentials leave the sandbox; keeping "the saved token" must not keep the fake one.
    wc.save_credentials(phone_number_id="106540352242922", business_account_id="102290129340398")
    row = _row()
    assert not row.sandbox and not row.active and not row.access_token_enc
    app.config["WHATSAPP_SANDBOX_SERVER"] = False
    with pytest.raises(ValidationError, match="not available"):
        wc.use_sandbox()


def test_type_switches(app):
    wc.set_type_enabled("payment_reminder", False)
    wc.set_type_enabled("order_confirmation", False)
    assert _row().disabled_types == ["order_confirmation", "payment_reminder"]
    assert not wc.is_type_enabled("payment_reminder") and wc.is_type_enabled("expired_order")
    wc.set_type_enabled("payment_reminder", True)
    wc.set_type_enabled("payment_reminder", True)
    assert _row().disabled_types == ["order_confirmation"]
    for bad in ("no_such_type", "", None, "order_confirmation'; --"):
        with pytest.raises(ValidationError):
            wc.set_type_enabled(bad, False)
    assert _row().disabled_types == ["order_confirmation"]


@pytest.mark.parametrize("text,cents", [("50", 5000), ("49.50", 4950), (" HK$80 ", 8000),
                                        ("1,000", 100000), ("", None), (None, None),
                                        ("   ", None)])
def test_monthly_cap(app, text, cents):
    wc.set_monthly_cap("12")
    wc.set_monthly_cap(text)
    assert _row().monthly_cap_cents == cents
    assert wc.view().monthly_cap_text == ("" if cents is None else f"{cents // 100}.{cents % 100:02d}")


@pytest.mark.parametrize("text", ["-5", "abc", "1.234", "=SUM(A1)", "5\x00", "9" * 10000, 50])
def test_monthly_cap_refused(app, text):
    wc.set_monthly_cap("30")
    with pytest.raises(ValidationError) as refused:
        wc.set_monthly_cap(text)
    assert refused.value.input_name == "cap"
    assert "Monthly cap" in str(refused.value)
    assert _row().monthly_cap_cents == 3000


def test_record_status(app):
    wc.record_status(False, "(#190) Invalid\n OAuth access token\x00")
    row = _row()
    assert row.status == "error" and row.status_detail == "(#190) Invalid OAuth access token"
    assert row.status_checked_at is not None
    wc.record_status(True, "+852 5555 0000" + "x" * 1000)
    row = _row()
    assert row.status == "connected" and len(row.status_detail) == 500
