"""Typed payment details of the built-in manual methods (issue 13, SPEC §10).

A Hong Kong customer can only pay when the page says exactly where to: the FPS
ID (or the phone number / email registered for FPS) and the account name; the
bank, account name and account number; the PayMe link. These are typed fields,
validated here, so a page never shows a half-filled or dangerous value (a
``javascript:`` "PayMe link", a 5-digit "FPS ID"). Custom manual methods keep
their free-text instructions; online methods need nothing.

Depends only on models, db and errors: domain/store.py and domain/payments.py
build on it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from domain.db import db, write_transaction
from domain.errors import NotFound, ValidationError
from domain.i18n import L_, Label
from domain.models import PaymentMethod

# The typed fields of each built-in manual method, in the order they are shown:
# (column, label shown to customer and merchant).
FIELDS: dict[str, list[tuple[str, Label]]] = {
    "fps": [("fps_id", L_("FPS ID")), ("payee_name", L_("Account name"))],
    "bank_transfer": [("bank_name", L_("Bank name")), ("payee_name", L_("Account name")),
                      ("account_number", L_("Account number"))],
    "payme": [("payme_link", L_("PayMe link"))],
}
ALL_FIELDS = ("fps_id", "payee_name", "bank_name", "account_number", "payme_link")


ACCOUNT_NAME = L_("Account name")
MAX_NAME = 120
MAX_LINK = 300
PAYME_HOSTS = ("payme.hsbc", "payme.hsbc.com.hk")  # and subdomains of the second
_EMAIL_RE = re.compile(r"^[^@\s<>\"'()\[\],;:\\]{1,64}@[A-Za-z0-9.-]{1,189}\.[A-Za-z]{2,}$")
_HK_PHONE_RE = re.compile(r"^(?:\+?852)?([4-9]\d{7})$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


class Detail(tuple):
    """One thing the customer needs, as (label, value, copyable).

    ``kind`` is "text" or "link" (the PayMe link, shown as a button);
    ``copy_text`` is what a copy button puts on the clipboard (a phone number
    without +852 and spaces, which banking apps want).
    """

    def __new__(cls, label: str, value: str, copyable: bool = True, *, kind: str = "text",
                copy_text: str | None = None):
        self = super().__new__(cls, (label, value, copyable))
        self.kind = kind
        self.copy_text = value if copy_text is None else copy_text
        return self

    label = property(lambda self: self[0])
    value = property(lambda self: self[1])
    copyable = property(lambda self: self[2])


class DetailsRefused(ValidationError):
    """Some fields were refused; ``errors`` maps each field to its refusal. The
    message is the first refusal, so callers showing one line still say why."""

    def __init__(self, errors: dict[str, ValidationError]):
        first = next(iter(errors.values()))
        super().__init__(first.msgid, plural=first.plural, count=first.count, **first.params)
        self.errors = errors


# ------------------------------------------------------------------ cleaning


def _fps_id_refused() -> ValidationError:
    return ValidationError("Enter a 7–9 digit FPS ID, a Hong Kong mobile number or an "
                           "email address.")


def _payme_refused() -> ValidationError:
    return ValidationError("Enter a link such as https://payme.hsbc/yourshop.")


def _clean_line(value, field: Label, *, max_len: int) -> str:
    """One line of text: trimmed, inner whitespace collapsed, no control characters."""
    text = "" if value is None else str(value)
    if any(ord(ch) < 32 or ord(ch) == 127 or 0x200B <= ord(ch) <= 0x200F
           or 0x202A <= ord(ch) <= 0x202E for ch in text):
        raise ValidationError("%(field)s contains invalid characters.", field=field)
    text = " ".join(text.split())
    if len(text) > max_len:
        raise ValidationError("%(field)s must be at most %(max)s characters.", field=field,
                              max=max_len)
    return text


def clean_name(value, field: Label = ACCOUNT_NAME) -> str:
    text = _clean_line(value, field, max_len=MAX_NAME)
    if text and text[0] in "=+-@":  # would run as a formula when exported to a sheet
        raise ValidationError("%(field)s cannot start with %(char)s.", field=field, char=text[0])
    return text


def classify_fps_id(value: str) -> str:
    """"phone", "email" or "id" for a cleaned FPS proxy ("" for empty)."""
    if not value:
        return ""
    if "@" in value:
        return "email"
    return "phone" if value.startswith("+852") else "id"


def clean_fps_id(value) -> str:
    """An FPS ID (7–9 digits), a Hong Kong mobile number (stored as "+852 9123 4567")
    or an email address (lower-cased)."""
    field = L_("FPS ID")
    text = _clean_line(value, field, max_len=MAX_NAME)
    if not text:
        return ""
    if "@" in text:
        if not _EMAIL_RE.match(text):
            raise _fps_id_refused()
        return text.lower()
    compact = re.sub(r"[\s-]", "", text)
    phone = _HK_PHONE_RE.match(compact)
    # Eight digits starting 4–9 are a mobile number (FPS IDs are 7 or 9 digits);
    # a +852 prefix says so outright.
    if phone and (len(compact) == 8 or "852" in compact[:4]):
        digits = phone.group(1)
        return f"+852 {digits[:4]} {digits[4:]}"
    if compact.isdigit() and compact.isascii() and 7 <= len(compact) <= 9:
        return compact
    raise _fps_id_refused()


def clean_account_number(value) -> str:
    """Digits with single spaces or hyphens between groups ("004-123-456789-001");
    6–20 digits, the bank code prefix included."""
    field = L_("Account number")
    text = _clean_line(value, field, max_len=40)
    if not text:
        return ""
    text = re.sub(r"\s*-\s*", "-", text)
    if not re.fullmatch(r"[0-9]+(?:[ -][0-9]+)*", text) or not text.isascii():
        raise ValidationError("%(field)s may contain only digits, spaces and hyphens.",
                              field=field)
    digits = sum(ch.isdigit() for ch in text)
    if not 6 <= digits <= 20:
        raise ValidationError("%(field)s must have 6 to 20 digits.", field=field)
    return text


def clean_payme_link(value) -> str:
    """A PayMe link: https only, on payme.hsbc or payme.hsbc.com.hk (or a subdomain
    of it, such as qr.payme.hsbc.com.hk). A link typed without https:// gets it."""
    field = L_("PayMe link")
    text = _clean_line(value, field, max_len=MAX_LINK)
    if not text:
        return ""
    if " " in text or "\\" in text or not text.isascii():
        raise _payme_refused()
    scheme = _SCHEME_RE.match(text)
    if scheme is None:
        text = "https://" + text.lstrip("/")
    elif scheme.group(1).lower() != "https" or not text[len(scheme.group(0)):].startswith("//"):
        raise ValidationError("%(field)s must start with https://.", field=field)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _payme_refused() from exc
    host = (parts.hostname or "").lower()
    if ("@" in parts.netloc or port not in (None, 443)
            or not (host in PAYME_HOSTS or host.endswith(".payme.hsbc.com.hk"))):
        raise ValidationError("Enter a PayMe link on payme.hsbc or payme.hsbc.com.hk.")
    if parts.path.strip("/") == "":
        raise ValidationError("Enter your own PayMe link, such as "
                              "https://payme.hsbc/yourshop.")
    return "https://" + host + parts.path + (f"?{parts.query}" if parts.query else "") + (
        f"#{parts.fragment}" if parts.fragment else "")


CLEANERS = {"fps_id": clean_fps_id, "payee_name": clean_name, "bank_name":
            lambda v: clean_name(v, L_("Bank name")), "account_number": clean_account_number,
            "payme_link": clean_payme_link}


# ------------------------------------------------------------------ reading


def fields_of(method: PaymentMethod) -> list[tuple[str, Label]]:
    """The typed fields of ``method`` ([] for custom and online methods)."""
    return FIELDS.get(method.code, []) if method.builtin and method.is_manual else []


def has_typed_details(method: PaymentMethod) -> bool:
    return bool(fields_of(method))


def details(method: PaymentMethod | None) -> list[Detail]:
    """What the customer copies to pay, in order; only filled fields."""
    if method is None:
        return []
    out = []
    for name, label in fields_of(method):
        value = (getattr(method, name) or "").strip()
        if not value:
            continue
        if name == "fps_id":
            kind = classify_fps_id(value)
            if kind == "phone":
                out.append(Detail(L_("FPS phone number"), value,
                                  copy_text=value.removeprefix("+852").replace(" ", "")))
                continue
            if kind == "email":
                out.append(Detail(L_("FPS email"), value))
                continue
        out.append(Detail(label, value, kind="link" if name == "payme_link" else "text"))
    return out


def missing(method: PaymentMethod) -> list[Label]:
    """Labels of what must still be filled in before the method can take payment."""
    if not method.is_manual:
        return []
    if not has_typed_details(method):
        return [] if (method.instructions or "").strip() else [L_("Payment instructions")]
    return [label for name, label in fields_of(method) if not (getattr(method, name) or "").strip()]


def is_ready(method: PaymentMethod) -> bool:
    """Can customers pay with it? Online: always; manual: when its details are filled."""
    return not missing(method)


def not_ready_error(method: PaymentMethod) -> ValidationError:
    """Why ``method`` cannot be turned on yet: one sentence per method, so each reads
    naturally in every language (no list of fields glued together in code)."""
    if has_typed_details(method) and method.code == "fps":
        return ValidationError("Fill in the FPS ID and account name before turning FPS on.")
    if has_typed_details(method) and method.code == "bank_transfer":
        return ValidationError("Fill in the bank name, account name and account number "
                               "before turning Bank Transfer on.")
    if has_typed_details(method):
        return ValidationError("Fill in the PayMe link before turning PayMe on.")
    return ValidationError("Write the payment instructions before turning %(method)s on.",
                           method=Label(method.name))


# ------------------------------------------------------------------ saving


def save_payment_details(method_id: int, *, instructions: str | None = None,
                         deadline_days=..., **fields) -> PaymentMethod:
    """Validate and save a built-in manual method's typed details (only its own
    fields; None leaves a field as it is), its optional extra note and deadline
    override (left out: unchanged; "" clears it).

    Every field is checked before anything is written: on refusal nothing is
    saved and DetailsRefused says what is wrong with each field. An enabled
    method cannot lose a required field (customers would see no way to pay).
    """
    from domain.store import clean_days, clean_text

    method = db.session.get(PaymentMethod, method_id)
    if method is None:
        raise NotFound("Payment method not found.")
    own = dict(fields_of(method))
    if not own:
        raise ValidationError("This payment method has no payment details to fill in.")
    unknown = set(fields) - set(own)
    if unknown:
        raise ValidationError("This payment method has no field %(field)s.",
                              field=sorted(unknown)[0])
    errors: dict[str, ValidationError] = {}
    values: dict[str, str] = {}
    for name, raw in fields.items():
        if raw is None:
            continue
        try:
            values[name] = CLEANERS[name](raw)
        except ValidationError as exc:
            errors[name] = exc
    extra = {}
    try:
        if instructions is not None:
            extra["instructions"] = clean_text(instructions, L_("Extra note for the customer"),
                                               max_len=2000)
    except ValidationError as exc:
        errors["instructions"] = exc
    try:
        if deadline_days is not ...:
            extra["deadline_days"] = clean_days(deadline_days, L_("Payment deadline"),
                                                max_value=60)
    except ValidationError as exc:
        errors["deadline_days"] = exc
    if errors:
        raise DetailsRefused(errors)
    with write_transaction() as session:
        method = session.get(PaymentMethod, method_id)
        if method is None:
            raise NotFound("Payment method not found.")
        for name, value in {**values, **extra}.items():
            setattr(method, name, value)
        if method.enabled and not is_ready(method):
            emptied = {name: ValidationError(
                "%(method)s is turned on, so customers need this. Turn it off first to "
                "clear it.", method=Label(method.name))
                for name, label in fields_of(method) if not getattr(method, name)}
            raise DetailsRefused(emptied)  # rolls the whole change back
    return method
