"""Store settings, payment methods and shipping methods (SPEC §1, §9)."""

from __future__ import annotations

import re
import secrets
from zoneinfo import available_timezones

from sqlalchemy import func, select
from sqlalchemy.orm.util import identity_key

from domain.db import db, write_transaction
from domain.errors import NotFound, ValidationError
from domain.i18n import L_, LOCALES, N_, Label, clean_locale
from domain.models import PaymentMethod, ShippingMethod, StoreSettings

PLANS = {"basic": N_("Basic"), "advanced": N_("Advanced"), "video_commerce": N_("Video Commerce")}
SHIPPING_KINDS = {"delivery": N_("Delivery"), "pickup": N_("Pickup"),
                  "logistics": N_("Logistics automation")}

# SPEC §1: built-in methods. Online ones are charged by the gateway at checkout.
# Names are stored as written here and marked N_: wherever a method's name is shown it
# goes through _() (templates: {{ _(m.name) }}), so the defaults read in the reader's
# language while a merchant's own text (no msgid) comes back unchanged. The manual
# built-ins start switched off: they take payment only once their typed details (FPS
# ID, bank account, PayMe link; domain/payment_details.py) are filled in.
BUILTIN_PAYMENT_METHODS = [
    ("fps", N_("FPS"), "manual", ""),
    ("bank_transfer", N_("Bank Transfer"), "manual", ""),
    ("payme", N_("PayMe"), "manual", ""),
    ("credit_card", N_("Credit Card"), "online", ""),
    ("alipay", N_("Alipay"), "online", ""),
    ("octopus", N_("Octopus"), "online", ""),
    ("tap_and_go", N_("Tap & Go"), "online", ""),
]

DEFAULT_SHIPPING_METHODS = [
    (N_("Local delivery"), "delivery", 3000),
    (N_("Store pickup (Mong Kok)"), "pickup", 0),
    (N_("SF Express (auto waybill)"), "logistics", 4000),
]

INVOICE_NOTE_MAX = 1000  # a few lines at the foot of an A4 invoice

EMAIL_RE = re.compile(r"^[^@\s<>\"']{1,64}@[^@\s<>\"']{1,189}\.[A-Za-z]{2,}$")


_SETTINGS_KEY = "shopdesk.store_settings"
# Built once: every request reads the row (half the CPU of session.get, which builds
# its statement anew). The row in the identity map, if any, is the one returned.
_SETTINGS_ROW = select(StoreSettings).where(StoreSettings.id == 1)
_SETTINGS_IDENTITY = identity_key(StoreSettings, 1)


def get_settings() -> StoreSettings:
    """The store's settings row, or unsaved defaults before set-up has run.

    The row is held in the session's ``info`` for as long as that session lives (one
    request): the identity map keeps objects only while something refers to them, so
    each of a page's dozens of calls (every ``|money``, the time zone, the store name)
    used to load the row again. Held, it is the session's own object: changes made in
    the request show, and a commit or rollback expires it as before (next read reloads)."""
    session = db.session
    held = session.info.get(_SETTINGS_KEY)
    if held is not None and held in session:
        return held
    # A row this session already has (loaded by the caller, say) is used as it is,
    # as session.get would; else one read.
    settings = session.identity_map.get(_SETTINGS_IDENTITY)
    if settings is None:
        settings = session.scalars(_SETTINGS_ROW).first()
    if settings is None:
        return StoreSettings(
            id=1, name="My Shop", currency="HKD", timezone="Asia/Hong_Kong", plan="basic",
            order_prefix="SD", address="", phone="", email="", notification_email="",
        )
    session.info[_SETTINGS_KEY] = settings
    return settings


def ensure_store_defaults() -> StoreSettings:
    """Create the settings row and built-in methods once; safe to call again."""
    with write_transaction() as session:
        settings = session.get(StoreSettings, 1)
        if settings is None:
            settings = StoreSettings(id=1)
            session.add(settings)
        have = set(session.scalars(select(PaymentMethod.code)))
        for pos, (code, name, kind, instructions) in enumerate(BUILTIN_PAYMENT_METHODS):
            if code not in have:
                session.add(PaymentMethod(code=code, name=name, kind=kind, builtin=True,
                                          instructions=instructions, position=pos,
                                          enabled=kind != "manual"))
        if not session.scalar(select(func.count(ShippingMethod.id))):
            for pos, (name, kind, fee) in enumerate(DEFAULT_SHIPPING_METHODS):
                session.add(ShippingMethod(name=name, kind=kind, fee_cents=fee, position=pos))
    return get_settings()


def clean_text(value: str | None, field: str, *, max_len: int, required: bool = False) -> str:
    """Strip, refuse control characters and over-long text. ``field`` is a label
    (L_("Name")): it is translated when the refusal is shown."""
    field = field if isinstance(field, Label) else Label(field)
    text = (value or "").strip()
    if required and not text:
        raise ValidationError("%(field)s is required.", field=field)
    if len(text) > max_len:
        raise ValidationError("%(field)s must be at most %(max)s characters.", field=field,
                              max=max_len)
    if any(ord(ch) < 32 and ch not in "\n\r\t" for ch in text):
        raise ValidationError("%(field)s contains invalid characters.", field=field)
    return text


def clean_email(value: str | None, field: str = L_("Email"), *, required: bool = False) -> str:
    field = field if isinstance(field, Label) else Label(field)
    text = clean_text(value, field, max_len=254, required=required)
    if text and not EMAIL_RE.match(text):
        raise ValidationError("%(field)s must be a valid email address.", field=field)
    return text.lower()


def clean_days(value, field: str, *, max_value: int) -> int | None:
    field = field if isinstance(field, Label) else Label(field)
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError("%(field)s must be a whole number.", field=field) from exc
    if not 1 <= number <= max_value:
        raise ValidationError("%(field)s must be between 1 and %(max)s, or empty for none.",
                              field=field, max=max_value)
    return number


def update_store_info(*, name, address, phone, email, notification_email, currency,
                      timezone, plan, order_prefix, payment_deadline_days=None,
                      reminder_lead_hours=None, language=None,
                      invoice_note=None) -> StoreSettings:
    """Validate and save the store information form. ``language`` None keeps the
    store's language; otherwise it must be one of LOCALES exactly. ``invoice_note``
    None keeps the note printed on invoices."""
    values = dict(
        name=clean_text(name, L_("Store name"), max_len=120, required=True),
        address=clean_text(address, L_("Address"), max_len=500),
        phone=clean_text(phone, L_("Phone"), max_len=40),
        email=clean_email(email, L_("Store email")),
        notification_email=clean_email(notification_email, L_("Notification email")),
        payment_deadline_days=clean_days(payment_deadline_days, L_("Payment deadline"),
                                         max_value=60),
        reminder_lead_hours=clean_days(reminder_lead_hours, L_("Reminder lead time"),
                                       max_value=720),
    )
    if invoice_note is not None:
        values["invoice_note"] = clean_text(invoice_note, L_("Invoice note"),
                                            max_len=INVOICE_NOTE_MAX)
    if language is not None:
        if language not in LOCALES or clean_locale(language) != language:
            raise ValidationError("Choose one of the languages offered.")
        values["language"] = language
    currency = (currency or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationError("Currency must be a three-letter code such as HKD.")
    if timezone not in available_timezones():
        raise ValidationError("Time zone is not a known IANA zone such as Asia/Hong_Kong.")
    if plan not in PLANS:
        raise ValidationError("Unknown plan.")
    prefix = (order_prefix or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{0,6}", prefix):
        raise ValidationError("Order prefix must be up to 6 letters A–Z.")
    with write_transaction() as session:
        settings = session.get(StoreSettings, 1)
        if settings is None:
            settings = StoreSettings(id=1)
            session.add(settings)
        for key, value in values.items():
            setattr(settings, key, value)
        settings.currency, settings.timezone, settings.plan = currency, timezone, plan
        settings.order_prefix = prefix
    return get_settings()


def set_payment_method_enabled(method_id: int, enabled: bool) -> PaymentMethod:
    """Switch a method on or off at checkout. A manual method goes on only once
    customers can pay with it (its details filled in: domain/payment_details.py)."""
    from domain.payment_details import is_ready, not_ready_error

    with write_transaction() as session:
        method = session.get(PaymentMethod, method_id)
        if method is None:
            raise NotFound("Payment method not found.")
        if enabled and not method.enabled and not is_ready(method):
            raise not_ready_error(method)
        method.enabled = bool(enabled)
    return method


def save_custom_payment_method(*, name, instructions, deadline_days=None,
                               method_id: int | None = None) -> PaymentMethod:
    """Create or edit a custom manual method (built-ins keep their names; their
    instructions are an optional extra note next to their typed details)."""
    name = clean_text(name, L_("Method name"), max_len=80, required=True)
    instructions = clean_text(instructions, L_("Payment instructions"), max_len=2000)
    days = clean_days(deadline_days, L_("Payment deadline"), max_value=60)
    with write_transaction() as session:
        clash = session.scalar(select(PaymentMethod).where(
            func.lower(PaymentMethod.name) == name.lower(), PaymentMethod.id != (method_id or 0)))
        if clash:
            raise ValidationError("A payment method called %(name)s already exists.", name=name)
        if method_id is None:
            position = (session.scalar(select(func.max(PaymentMethod.position))) or 0) + 1
            method = PaymentMethod(code=f"custom_{secrets.token_hex(4)}",
                                   name=name, kind="manual", position=position)
            session.add(method)
        else:
            method = session.get(PaymentMethod, method_id)
            if method is None:
                raise NotFound("Payment method not found.")
            if not method.is_manual:
                raise ValidationError("Online methods have no payment instructions.")
            if not method.builtin:
                method.name = name
        if not instructions and not method.builtin:
            raise ValidationError("%(field)s is required.", field=L_("Payment instructions"))
        method.instructions = instructions
        method.deadline_days = days
    return method


def save_shipping_method(*, name, kind, fee, method_id: int | None = None,
                         enabled: bool = True) -> ShippingMethod:
    from domain.money import parse_money

    name = clean_text(name, L_("Method name"), max_len=80, required=True)
    if kind not in SHIPPING_KINDS:
        raise ValidationError("Kind must be delivery, pickup or logistics automation.")
    fee_cents = parse_money(fee, field=L_("Fee"), allow_blank=True)
    with write_transaction() as session:
        if method_id is None:
            position = (session.scalar(select(func.max(ShippingMethod.position))) or 0) + 1
            method = ShippingMethod(position=position)
            session.add(method)
        else:
            method = session.get(ShippingMethod, method_id)
            if method is None:
                raise NotFound("Shipping method not found.")
        method.name, method.kind, method.fee_cents = name, kind, fee_cents
        method.enabled = bool(enabled)
    return method


# Asked on every cart and checkout request: built once, so SQLAlchemy works out their
# cache keys once (it keeps the key with the statement object).
_ENABLED_PAYMENT = select(PaymentMethod).where(PaymentMethod.enabled) \
    .order_by(PaymentMethod.position)
_ENABLED_SHIPPING = select(ShippingMethod).where(ShippingMethod.enabled) \
    .order_by(ShippingMethod.position)


def enabled_payment_methods() -> list[PaymentMethod]:
    return list(db.session.scalars(_ENABLED_PAYMENT))


def enabled_shipping_methods() -> list[ShippingMethod]:
    return list(db.session.scalars(_ENABLED_SHIPPING))


def all_products():
    """Products for the orders page's product filter, by name."""
    from domain.models import Product

    return list(db.session.scalars(select(Product).order_by(Product.name)))


def product_names(ids) -> dict[int, str]:
    """The names of just these products (a filter's chips), without loading every product."""
    from domain.models import Product

    if not ids:
        return {}
    return dict(db.session.execute(select(Product.id, Product.name).where(Product.id.in_(ids))).all())


LOGO_MAX_BYTES = 2 * 1024 * 1024
LOGO_BOX = (800, 400)  # big enough for a sharp invoice header, small enough to embed


def set_store_logo(stream) -> str:
    """Validate, clean (re-encoded, no metadata) and store the store's logo; returns its path.

    PNG or JPEG only, recognised by content; the previous logo file is removed.
    """
    from io import BytesIO

    from PIL import Image

    from domain.proofs import clean_upload, read_limited, sniff

    data = read_limited(stream, LOGO_MAX_BYTES)
    if sniff(data) not in ("png", "jpeg"):
        raise ValidationError("The logo must be a PNG or JPEG image.")
    clean = clean_upload(data)
    image = Image.open(BytesIO(clean.data))
    image.thumbnail(LOGO_BOX)
    out = BytesIO()
    image.save(out, format="PNG" if clean.kind == "png" else "JPEG", quality=90)
    folder = _logo_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = f"logo-{secrets.token_hex(8)}.{clean.extension}"
    (folder / name).write_bytes(out.getvalue())
    with write_transaction() as session:
        settings = session.get(StoreSettings, 1)
        if settings is None:
            settings = StoreSettings(id=1)
            session.add(settings)
        old, settings.logo_path = settings.logo_path, name
    _remove_logo_file(old)
    return name


def remove_store_logo() -> None:
    with write_transaction() as session:
        settings = session.get(StoreSettings, 1)
        old = settings.logo_path if settings else None
        if settings:
            settings.logo_path = None
    _remove_logo_file(old)


def logo_file():
    """Absolute path of the current logo, or None."""
    name = get_settings().logo_path
    if not name or "/" in name or name.startswith("."):
        return None
    path = _logo_folder() / name
    return path if path.is_file() else None


def _logo_folder():
    from pathlib import Path

    from flask import current_app

    return Path(current_app.config["UPLOAD_FOLDER"]) / "logo"


def _remove_logo_file(name: str | None) -> None:
    if name and "/" not in name and not name.startswith("."):
        (_logo_folder() / name).unlink(missing_ok=True)


def all_payment_methods() -> list[PaymentMethod]:
    return list(db.session.scalars(select(PaymentMethod).order_by(PaymentMethod.position)))


def all_shipping_methods() -> list[ShippingMethod]:
    return list(db.session.scalars(select(ShippingMethod).order_by(ShippingMethod.position)))
