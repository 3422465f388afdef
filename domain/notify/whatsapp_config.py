"""The store's WhatsApp channel settings (issue 10): one WhatsAppConfig row, id 1.

The access token and the app secret are stored encrypted (Fernet) under a key
derived from SECRET_KEY with HKDF-SHA256 and a fixed purpose string, so a
database copy alone does not give them away, and a changed SECRET_KEY makes
them unreadable rather than wrong: ``decrypt_secret`` then refuses with "re-enter
the token". Nothing a page renders returns a secret: pages read ``view()``,
which only says whether each secret is saved.

Every write goes through ``domain.db.write_transaction``; a refused save
changes nothing.
"""

from __future__ import annotations

import base64
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy.exc import IntegrityError

from domain.db import db, write_transaction
from domain.errors import ValidationError
from domain.i18n import L_
from domain.models import WhatsAppConfig, utcnow
from domain.money import cents_to_input, parse_money

SANDBOX_PHONE_ID = "sandbox-phone"
SANDBOX_BUSINESS_ID = "sandbox-business"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_APP_SECRET = "sandbox-app-secret"

# HKDF's "info": binds the derived key to this one purpose, so the same
# SECRET_KEY signing sessions never doubles as this encryption key.
_KEY_INFO = b"shopdesk/whatsapp-credentials/fernet/v1"

PHONE_ID = L_("Phone number ID")
BUSINESS_ID = L_("WhatsApp Business Account ID")
ACCESS_TOKEN = L_("Access token")
APP_SECRET = L_("App secret")
MONTHLY_CAP = L_("Monthly cap")

_ID = re.compile(r"[0-9]{5,30}")
_TOKEN = re.compile(r"[\x21-\x7e]{20,1000}")  # printable ASCII, no spaces
_SECRET = re.compile(r"[A-Za-z0-9]{16,200}")



def _for(input_name: str, exc: ValidationError) -> ValidationError:
    """The refusal, naming the form input it belongs to (``exc.input_name``)."""
    exc.input_name = input_name
    return exc


def _unreadable() -> ValidationError:
    return _for("access_token", ValidationError(
        "The saved WhatsApp access token and app secret can no longer be read (the server's "
        "secret key changed). Re-enter the access token and app secret."))


# ------------------------------------------------------------------ encryption


def _fernet(secret_key: str | bytes | None = None) -> Fernet:
    key = current_app.config["SECRET_KEY"] if secret_key is None else secret_key
    if not key:
        raise RuntimeError("SECRET_KEY is not set: WhatsApp credentials cannot be encrypted.")
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(raw)
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(text: str) -> str:
    """``text`` encrypted under the current SECRET_KEY (ASCII Fernet token)."""
    return _fernet().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    """The plain secret; "" for nothing saved. Refuses (ValidationError, "re-enter")
    when the token was made under another SECRET_KEY or is damaged."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise _unreadable() from exc


def _readable(token: str) -> bool:
    try:
        decrypt_secret(token)
    except ValidationError:
        return False
    return True


# ------------------------------------------------------------------ reading


def get_config() -> WhatsAppConfig:
    """The channel's row, created (off, with a fresh webhook verify token) the first time."""
    config = db.session.get(WhatsAppConfig, 1)
    if config is not None:
        if not config.verify_token:
            with write_transaction():
                config = db.session.get(WhatsAppConfig, 1)
                config.verify_token = config.verify_token or secrets.token_urlsafe(24)
        return config
    try:
        with write_transaction() as session:
            config = session.get(WhatsAppConfig, 1)  # another request may have made it meanwhile
            if config is None:
                config = WhatsAppConfig(id=1, active=False, sandbox=False, disabled_types=[],
                                        verify_token=secrets.token_urlsafe(24),
                                        updated_at=utcnow())
                session.add(config)
    except IntegrityError:  # PostgreSQL: a concurrent first request inserted it first
        config = db.session.get(WhatsAppConfig, 1)
    return config


def is_active() -> bool:
    config = db.session.get(WhatsAppConfig, 1)
    return bool(config is not None and config.active)


def is_type_enabled(type_code: str, config: WhatsAppConfig | None = None) -> bool:
    config = config or get_config()
    return type_code not in (config.disabled_types or [])


@dataclass(frozen=True)
class ConfigView:
    """What a page may show: never a secret, only whether each one is saved."""

    active: bool
    sandbox: bool
    phone_number_id: str
    business_account_id: str
    has_access_token: bool
    has_app_secret: bool
    secrets_readable: bool  # False: SECRET_KEY changed, the owner must re-enter them
    complete: bool  # enough to activate
    verify_token: str  # the webhook's subscribe token, to paste into Meta's dashboard
    api_version: str
    status: str  # "" | connected | error
    status_detail: str
    status_checked_at: datetime | None
    disabled_types: tuple[str, ...]
    monthly_cap_cents: int | None
    monthly_cap_text: str  # "50.00", "" for no cap


def view() -> ConfigView:
    config = get_config()
    readable = _readable(config.access_token_enc) and _readable(config.app_secret_enc)
    return ConfigView(
        active=bool(config.active), sandbox=bool(config.sandbox),
        phone_number_id=config.phone_number_id or "",
        business_account_id=config.business_account_id or "",
        has_access_token=bool(config.access_token_enc),
        has_app_secret=bool(config.app_secret_enc),
        secrets_readable=readable,
        complete=_complete(config) and readable,
        verify_token=config.verify_token or "",
        api_version=config.api_version or "v21.0",
        status=config.status or "", status_detail=config.status_detail or "",
        status_checked_at=config.status_checked_at,
        disabled_types=tuple(config.disabled_types or ()),
        monthly_cap_cents=config.monthly_cap_cents,
        monthly_cap_text=cents_to_input(config.monthly_cap_cents),
    )


def _complete(config: WhatsAppConfig) -> bool:
    return bool(config.phone_number_id and (config.business_account_id or config.sandbox)
                and config.access_token_enc and config.app_secret_enc)


def _saved_config() -> WhatsAppConfig | None:
    """The row as saved, never created: the public webhook must write nothing when
    its caller cannot prove who it is."""
    return db.session.get(WhatsAppConfig, 1)


def access_token() -> str:
    """The decrypted access token ("" when none is saved); refuses after a SECRET_KEY change."""
    config = _saved_config()
    return decrypt_secret(config.access_token_enc) if config else ""


def app_secret() -> str:
    """The decrypted app secret, for webhook signatures ("" when none is saved)."""
    config = _saved_config()
    if config is None:
        return ""
    try:
        return decrypt_secret(config.app_secret_enc)
    except ValidationError as exc:
        exc.input_name = "app_secret"
        raise


def api_base(config: WhatsAppConfig | None = None) -> str:
    """Where the client sends: the built-in fake API in sandbox mode, else Meta's Graph API."""
    config = config or get_config()
    if config.sandbox:
        public = (current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")
        return public + "/_sandbox/whatsapp"
    return (current_app.config.get("WHATSAPP_API_BASE") or "https://graph.facebook.com").rstrip("/")


# ------------------------------------------------------------------ validation


def _clean_id(value, field, input_name: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise _for(input_name, ValidationError("%(field)s is required.", field=field))
    if not _ID.fullmatch(text):
        raise _for(input_name, ValidationError(
            "%(field)s must be 5 to 30 digits, as shown in Meta's WhatsApp Manager.", field=field))
    return text


def _clean_token(value) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # keep the saved one (a password field comes back empty)
    text = value.strip() if isinstance(value, str) else ""
    if not _TOKEN.fullmatch(text):
        raise _for("access_token", ValidationError(
            "The access token must be 20 to 1000 letters, digits or symbols, without spaces. "
            "Copy it again from Meta's app dashboard."))
    return text


def _clean_secret(value) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip() if isinstance(value, str) else ""
    if not _SECRET.fullmatch(text):
        raise _for("app_secret", ValidationError(
            "The app secret must be 16 to 200 letters and digits. Copy it again from your Meta "
            "app's basic settings."))
    return text


# ------------------------------------------------------------------ writing


def save_credentials(*, phone_number_id, business_account_id, access_token=None,
                     app_secret=None) -> None:
    """Save real Cloud API credentials (leaves sandbox mode). A blank or None secret keeps
    the saved one. Refuses bad input with a ValidationError naming ``exc.input_name``;
    nothing is saved then. Never returns a secret."""
    phone = _clean_id(phone_number_id, PHONE_ID, "phone_number_id")
    business = _clean_id(business_account_id, BUSINESS_ID, "business_account_id")
    token = _clean_token(access_token)
    secret = _clean_secret(app_secret)
    get_config()
    with write_transaction() as session:
        config = session.get(WhatsAppConfig, 1)
        was_sandbox = bool(config.sandbox)
        config.phone_number_id, config.business_account_id = phone, business
        if token is not None:
            config.access_token_enc = encrypt_secret(token)
        elif was_sandbox:  # the sandbox's token is no credential for Meta
            config.access_token_enc = ""
        if secret is not None:
            config.app_secret_enc = encrypt_secret(secret)
        elif was_sandbox:
            config.app_secret_enc = ""
        config.sandbox = False
        if not _complete(config):
            config.active = False
        config.status, config.status_detail, config.status_checked_at = "", "", None
        config.updated_at = utcnow()


def use_sandbox() -> None:
    """Fill in the built-in fake API's credentials, so the whole feature can be tried."""
    if not current_app.config.get("WHATSAPP_SANDBOX_SERVER"):
        raise ValidationError("Sandbox mode is not available on this server.")
    get_config()
    with write_transaction() as session:
        config = session.get(WhatsAppConfig, 1)
        config.sandbox = True
        config.phone_number_id = SANDBOX_PHONE_ID
        config.business_account_id = SANDBOX_BUSINESS_ID
        config.access_token_enc = encrypt_secret(SANDBOX_TOKEN)
        config.app_secret_enc = encrypt_secret(SANDBOX_APP_SECRET)
        config.status, config.status_detail, config.status_checked_at = "", "", None
        config.updated_at = utcnow()


def activate() -> None:
    """Turn the channel on; refuses until the credentials are complete and readable."""
    get_config()
    with write_transaction() as session:
        config = session.get(WhatsAppConfig, 1)
        if not _complete(config):
            raise ValidationError("Enter the phone number ID, business account ID, access token "
                                  "and app secret before turning WhatsApp on.")
        if not (_readable(config.access_token_enc) and _readable(config.app_secret_enc)):
            raise _unreadable()
        config.active = True
        config.updated_at = utcnow()


def deactivate() -> None:
    """Turn the channel off: no new WhatsApp messages from now on."""
    get_config()
    with write_transaction() as session:
        config = session.get(WhatsAppConfig, 1)
        config.active = False
        config.updated_at = utcnow()


def set_type_enabled(type_code: str, enabled: bool) -> None:
    from domain.notify.whatsapp import TYPES

    if not isinstance(type_code, str) or type_code not in TYPES:
        raise ValidationError("There is no such WhatsApp message type.")
    get_config()
    with write_transaction() as session:
        config = session.get(WhatsAppConfig, 1)
        disabled = [code for code in (config.disabled_types or []) if code != type_code]
        if not enabled:
            disabled.append(type_code)
        # A new list (in TYPES order): the JSON column notices a replaced value, not a mutation.
        config.disabled_types = [code for code in TYPES if code in disabled]
        config.updated_at = utcnow()


def set_monthly_cap(value) -> None:
    """The monthly cap from what was typed ("50", "49.50", "HK$80"); blank or None = no cap."""
    text = value.strip() if isinstance(value, str) else ("" if value is None else None)
    if text is None:
        raise _for("cap", ValidationError("%(field)s must be a positive amount like 120 or 99.50.",
                                          field=MONTHLY_CAP))
    try:
        cents = parse_money(text, field=MONTHLY_CAP) if text else None
    except ValidationError as exc:
        exc.input_name = "cap"
        raise
    get_config()
    with write_transaction() as session:
        config = session.get(WhatsAppConfig, 1)
        config.monthly_cap_cents = cents
        config.updated_at = utcnow()


def record_status(ok: bool, detail: str = "") -> None:
    """The settings page's status line: connected, or the API's error in words."""
    # One line of visible text (an API's message may carry newlines or control characters).
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in str(detail or ""))
    text = " ".join(text.split())[:500]
    get_config()
    with write_transaction() as session:
        config = session.get(WhatsAppConfig, 1)
        config.status = "connected" if ok else "error"
        config.status_detail = text
        config.status_checked_at = utcnow()
