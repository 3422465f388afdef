"""WhatsApp order messages (issue 10): the 9 template types (the 9th, "order_updated",
from issue 12's Modify order), their parameters
rendered from the order at send time, recipients, and a small Cloud API client.

Each type is a template the merchant registers in their Meta account under the
name ``shopdesk_<type>``, with NAMED parameters, in "en" and "zh_HK". TYPES holds
the approved text the settings page lists for that. The client posts
``{base}/{version}/{phone_number_id}/messages`` with a ``template`` body whose
parameters carry ``parameter_name`` (Meta's named-parameter form), over httpx
(a maintained, small HTTP client with separate connect and read timeouts;
pywa would bring a web framework integration and its own retry rules that the
outbox already owns).

Failures come back as WhatsAppError with an outcome the outbox acts on:
"retry" (throttled, Meta's side down, nothing sent), "permanent" (Meta refused
the message: bad number, template, token), or "unknown" (the request went out
and no answer came: it may have been delivered, so it is never sent again on
its own).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import phonenumbers
from babel.numbers import format_currency

from domain.i18n import DEFAULT_LOCALE, N_, clean_locale
from domain.models import Order, OutboxMessage
from domain.phones import MAX_PHONE, store_region

LANGUAGES = ("en", "zh_HK")


@dataclass(frozen=True)
class WhatsAppType:
    code: str
    template_name: str
    label: str  # N_() message id, translated where shown
    params: tuple[str, ...]
    text: dict[str, str]  # language -> the approved body, with {{name}} placeholders


def _type(code: str, label: str, en: str, zh: str) -> WhatsAppType:
    names = tuple(dict.fromkeys(re.findall(r"\{\{(\w+)\}\}", en)))
    assert set(names) == set(re.findall(r"\{\{(\w+)\}\}", zh)), code  # same parameters
    return WhatsAppType(code, f"shopdesk_{code}", label, names, {"en": en, "zh_HK": zh})


# Meta refuses a body that starts or ends with a parameter: each ends with words.
TYPES: OrderedDict[str, WhatsAppType] = OrderedDict((t.code, t) for t in (
    _type("order_confirmation", N_("Order confirmation"),
          "Hi {{customer_name}}, thank you for your order at {{store_name}}! Order "
          "{{order_number}}, total {{total}}. View your order: {{order_link}}\n"
          "We will message you when there is news.",
          "你好，{{customer_name}}！多謝你在{{store_name}}訂購。訂單 {{order_number}}，"
          "總額 {{total}}。查看訂單：{{order_link}}\n訂單有進展時，我們會再通知你。"),
    _type("shipping_status", N_("Shipping status"),
          "Hi {{customer_name}}, your order {{order_number}} from {{store_name}} has been "
          "shipped. Tracking number: {{tracking_code}}. Details: {{order_link}}\n"
          "Thank you for shopping with us.",
          "你好，{{customer_name}}！你在{{store_name}}的訂單 {{order_number}} 已經寄出，"
          "追蹤編號：{{tracking_code}}。詳情：{{order_link}}\n多謝惠顧。"),
    _type("pickup_notification", N_("Pickup notification"),
          "Hi {{customer_name}}, your order {{order_number}} is ready for pickup at "
          "{{store_name}}. Order details: {{order_link}}\nSee you soon!",
          "你好，{{customer_name}}！你的訂單 {{order_number}} 已可在{{store_name}}取貨。"
          "訂單詳情：{{order_link}}\n期待見到你！"),
    _type("pickup_completed", N_("Pickup completed"),
          "Hi {{customer_name}}, you picked up order {{order_number}}. Thank you for "
          "shopping at {{store_name}}, see you again!",
          "你好，{{customer_name}}！你已領取訂單 {{order_number}}。多謝你光顧{{store_name}}，"
          "歡迎再來！"),
    _type("order_cancellation", N_("Order cancellation"),
          "Hi {{customer_name}}, {{store_name}} has canceled your order {{order_number}}. "
          "Reason: {{reason}}. Details: {{order_link}}\nSorry for the inconvenience.",
          "你好，{{customer_name}}。{{store_name}}已取消你的訂單 {{order_number}}，"
          "原因：{{reason}}。詳情：{{order_link}}\n不便之處，敬請原諒。"),
    _type("payment_reminder", N_("Payment reminder"),
          "Hi {{customer_name}}, order {{order_number}} ({{total}}) is still waiting for "
          "your payment. Please pay by {{deadline}}, or the order will be canceled. How to "
          "pay: {{order_link}}\nThank you!",
          "你好，{{customer_name}}！訂單 {{order_number}}（{{total}}）仍在等候你付款。請於 "
          "{{deadline}} 前付款，否則訂單會被取消。付款方法：{{order_link}}\n多謝！"),
    _type("payment_received", N_("Payment received"),
          "Hi {{customer_name}}, {{store_name}} received your payment of {{total}} for "
          "order {{order_number}}. Thank you! Order details: {{order_link}}\n"
          "We will message you when there is news.",
          "你好，{{customer_name}}！{{store_name}}已收到你訂單 {{order_number}} 的付款 "
          "{{total}}，多謝！訂單詳情：{{order_link}}\n訂單有進展時，我們會再通知你。"),
    _type("expired_order", N_("Expired order"),
          "Hi {{customer_name}}, order {{order_number}} at {{store_name}} was canceled "
          "because the payment deadline passed. Details: {{order_link}}\n"
          "You are welcome to order again.",
          "你好，{{customer_name}}。由於已過付款期限，你在{{store_name}}的訂單 "
          "{{order_number}} 已被取消。詳情：{{order_link}}\n歡迎你再次訂購。"),
    # amount_due: the total while unpaid, the balance once paid, else zero (a credit).
    _type("order_updated", N_("Order updated"),
          "Hi {{customer_name}}, {{store_name}} updated your order {{order_number}}. New "
          "total: {{total}}. Amount due: {{amount_due}}. See the changes: {{order_link}}\n"
          "Thank you!",
          "你好，{{customer_name}}！{{store_name}}已更新你的訂單 {{order_number}}。新總額："
          "{{total}}，應付金額：{{amount_due}}。查看變更：{{order_link}}\n多謝！"),
))

# order event type -> WhatsApp type code (OutboxMessage.kind for channel "whatsapp").
EVENT_TYPES = {
    "order_placed": "order_confirmation",
    "order_shipped": "shipping_status",
    "ready_for_pickup": "pickup_notification",
    "pickup_completed": "pickup_completed",
    "order_rejected": "order_cancellation",
    "payment_reminder_due": "payment_reminder",
    "payment_confirmed": "payment_received",
    "order_expired": "expired_order",
    "order_modified": "order_updated",
}

# A parameter must never be empty (Meta refuses it): what stands in, per language.
_FALLBACK = {
    "customer_name": {"en": "there", "zh_HK": "顧客"},
    "tracking_code": {"en": "not provided", "zh_HK": "未有提供"},
    "reason": {"en": "not given", "zh_HK": "未有說明"},
    "deadline": {"en": "the deadline on your order page", "zh_HK": "訂單頁面所示的期限"},
}
_PARAM_MAX = {"customer_name": 60, "store_name": 60, "reason": 300, "tracking_code": 64}


@dataclass(frozen=True)
class TemplateMessage:
    name: str  # "shopdesk_order_confirmation"
    language: str  # "en" | "zh_HK"
    params: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The message as the customer reads it (the approved text, filled in)."""
        wa_type = TYPES[self.name.removeprefix("shopdesk_")]
        return re.sub(r"\{\{(\w+)\}\}", lambda m: self.params.get(m.group(1), ""),
                      wa_type.text[self.language])


# Sample values Meta asks for when a template with named parameters is registered.
EXAMPLES = {
    "en": {"customer_name": "Chan Tai Man", "store_name": "Cookie Lab", "order_number": "SD10023",
           "total": "HK$256.00", "order_link": "https://shop.example.hk/shop/o/Xy12Ab34",
           "tracking_code": "SF1234567890", "reason": "Out of stock",
           "deadline": "2026-11-30 23:59 HKT", "amount_due": "HK$128.00"},
    "zh_HK": {"customer_name": "陳大文", "store_name": "曲奇工房", "order_number": "SD10023",
              "total": "HK$256.00", "order_link": "https://shop.example.hk/shop/o/Xy12Ab34",
              "tracking_code": "SF1234567890", "reason": "貨品已售罄",
              "deadline": "2026-11-30 23:59 HKT", "amount_due": "HK$128.00"},
}


def template_definition(type_code: str, language: str) -> dict:
    """The body to register this template (POST /<business account id>/message_templates):
    a UTILITY template with NAMED parameters and Meta's required sample values."""
    wa_type = TYPES[type_code]
    return {
        "name": wa_type.template_name, "language": language, "category": "UTILITY",
        "parameter_format": "NAMED",
        "components": [{
            "type": "BODY", "text": wa_type.text[language],
            "example": {"body_text_named_params": [
                {"param_name": name, "example": EXAMPLES[language][name]}
                for name in wa_type.params]},
        }],
    }


def language_for(order: Order) -> str:
    """The template language: the order's, else the store's ("zh_HK" or "en")."""
    locale = clean_locale(order.locale)
    if locale is None:
        from domain.store import get_settings

        locale = clean_locale(getattr(get_settings(), "language", None), DEFAULT_LOCALE)
    return "zh_HK" if locale == "zh_Hant_HK" else "en"


# Become a space: control characters, line and paragraph breaks, odd spaces. Dropped:
# the bidirectional overrides that could make a number or link read backwards.
_AS_SPACE = frozenset({"Cc", "Zs", "Zl", "Zp", "Co", "Cn", "Cs"})
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _param(text, name: str = "") -> str:
    """One line of plain text: Meta refuses newlines, tabs and runs of spaces in a parameter."""
    cleaned = "".join(" " if unicodedata.category(ch) in _AS_SPACE else ch
                      for ch in unicodedata.normalize("NFC", str(text or "")) if ch not in _BIDI)
    cleaned = " ".join(cleaned.split())
    limit = _PARAM_MAX.get(name)
    if limit and len(cleaned) > limit:
        cleaned = cleaned[:limit - 1].rstrip() + "…"
    return cleaned


def _money(cents: int, currency: str, language: str) -> str:
    locale = "zh_Hant_HK" if language == "zh_HK" else "en"
    return format_currency(int(cents) / 100, currency, currency_digits=True, locale=locale)


def deadline_text(value: datetime | None, timezone: str) -> str:
    """'2026-11-30 23:59 HKT' in the store's zone (the same digits in both languages)."""
    if value is None:
        return ""
    aware = value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))
    local = aware.astimezone(ZoneInfo(timezone or "Asia/Hong_Kong"))
    name = local.tzname() or ""
    if not name or name[0] in "+-":  # zones without letters read "UTC+8"
        minutes = int((local.utcoffset() or timedelta(0)).total_seconds() // 60)
        hours, rest = divmod(abs(minutes), 60)
        name = f"UTC{'+' if minutes >= 0 else '-'}{hours}" + (f":{rest:02d}" if rest else "")
    return f"{local:%Y-%m-%d %H:%M} {name}"


def build_message(message: OutboxMessage, order: Order) -> TemplateMessage:
    """The template message for one outbox row, from the order as it is now.
    LookupError for a kind that is no WhatsApp type."""
    from domain.notify.email import public_url
    from domain.store import get_settings

    wa_type = TYPES.get(message.kind)
    if wa_type is None:
        raise LookupError(f"No WhatsApp template for message kind {message.kind!r}.")
    store = get_settings()
    language = language_for(order)
    values = {
        "customer_name": order.customer_name,
        "store_name": store.name or "Shopdesk",
        "order_number": order.number or "",
        "total": _money(order.total_cents or 0, store.currency or "HKD", language),
        "order_link": public_url("storefront.order", token=order.public_token),
        "tracking_code": order.tracking_code,
        "reason": order.cancel_reason,
        "deadline": deadline_text(order.payment_deadline_at, store.timezone),
    }
    if "amount_due" in wa_type.params:
        values["amount_due"] = _money(_amount_due(order), store.currency or "HKD", language)
    params = {}
    for name in wa_type.params:
        text = _param(values.get(name, ""), name)
        params[name] = text or _FALLBACK.get(name, {}).get(language, "-")
    return TemplateMessage(wa_type.template_name, language, params)


def _amount_due(order: Order) -> int:
    """What the customer still has to pay now: the total while unpaid, the balance due
    once paid (0 when paid up or owed a credit)."""
    from domain.balance import balance_state
    from domain.status import OrderStatus

    if order.status == OrderStatus.PENDING_PAYMENT:
        return order.total_cents or 0
    state = balance_state(order)
    return state.cents if state.due else 0


# ------------------------------------------------------------------ recipients

_MESSAGING_TYPES = (phonenumbers.PhoneNumberType.MOBILE,
                    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def recipient_for(order: Order) -> str | None:
    """The customer's mobile number in E.164, or None: no valid mobile, no message."""
    raw = order.customer_phone_e164 or order.customer_phone or ""
    text = unicodedata.normalize("NFKC", str(raw))[:MAX_PHONE * 2]
    if not any(ch.isdigit() for ch in text):
        return None
    try:
        number = phonenumbers.parse(text, store_region())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number) \
            or phonenumbers.number_type(number) not in _MESSAGING_TYPES:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_HAND_TEXT = {
    "en": "Hi {name}, this is {store} about your order {number}.",
    "zh_HK": "你好，{name}！我們是{store}，想就訂單 {number} 聯絡你。",
}


def wa_me_link(order: Order) -> str | None:
    """The free hand-sent alternative: https://wa.me/<digits>?text=<greeting in the
    order's language>. None without a valid mobile number."""
    to = recipient_for(order)
    if to is None:
        return None
    from domain.store import get_settings

    language = language_for(order)
    text = _HAND_TEXT[language].format(
        name=_param(order.customer_name, "customer_name") or _FALLBACK["customer_name"][language],
        store=_param(get_settings().name, "store_name") or "Shopdesk",
        number=order.number or "")
    digits = "".join(ch for ch in to if ch.isdigit())
    return f"https://wa.me/{digits}?text={quote(text, safe='')}"


# ------------------------------------------------------------------ webhook signatures

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


def signature_header(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 value Meta sends for ``body``."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, header: str | None, app_secret: str) -> bool:
    """True only for a well-formed ``sha256=<hex>`` matching HMAC-SHA256(app secret, body);
    anything missing or malformed is False (constant-time comparison)."""
    if not app_secret or not isinstance(header, str) or not isinstance(body, (bytes, bytearray)):
        return False
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        return False
    expected = signature_header(bytes(body), app_secret).encode("ascii")
    return hmac.compare_digest(expected, f"sha256={match.group(1).lower()}".encode("ascii"))


# ------------------------------------------------------------------ the client

# Graph API error codes (developers.facebook.com .../whatsapp/support/error-codes):
# throttling and Meta-side trouble are worth another try later...
RETRY_CODES = frozenset({
    1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131048, 131056, 131057, 133004,
})
# ...a refused number, template, parameter or credential is not.
PERMANENT_CODES = frozenset({
    0, 3, 10, 100, 190, 200, 131008, 131009, 131021, 131026, 131030, 131031, 131045,
    131047, 131051, 131052, 131053, 132000, 132001, 132005, 132007, 132012, 132015,
    132016, 132068, 132069, 133010,
})
RETRY = "retry"
PERMANENT = "permanent"
UNKNOWN = "unknown"
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class WhatsAppError(Exception):
    """A send or check that did not succeed, with what the outbox should do about it."""

    def __init__(self, outcome: str, *, code: int | None = None, title: str = "",
                 detail: str = "", retry_after: float | None = None,
                 http_status: int | None = None):
        self.outcome = outcome
        self.code = code
        self.title = title
        self.detail = detail
        self.retry_after = retry_after
        self.http_status = http_status
        super().__init__(self.describe())

    def describe(self) -> str:
        """The API's error in words: '(#131026) Message undeliverable: <details>'."""
        text = self.title or ""
        # Meta's messages already start with "(#131026) ": no second one.
        head = f"(#{self.code}) " if self.code is not None and \
            not text.startswith(f"(#{self.code})") else ""
        if self.detail and self.detail not in text:
            text = f"{text}: {self.detail}" if text else self.detail
        return (head + (text or self.outcome))[:500]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 86400))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, min((when - datetime.now(when.tzinfo)).total_seconds(), 86400.0))


def error_from_response(response: httpx.Response) -> WhatsAppError:
    """Map a non-2xx Graph API answer to an outcome (code first, then HTTP status)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    title = str(error.get("message") or "")[:300]
    data = error.get("error_data")
    detail = str(data.get("details") or "") if isinstance(data, dict) else ""
    status = response.status_code
    if code in RETRY_CODES or status == 429:
        outcome = RETRY
    elif code in PERMANENT_CODES:
        outcome = PERMANENT
    else:
        outcome = RETRY if status >= 500 else PERMANENT
    if not title:
        title = f"HTTP {status} {response.reason_phrase}".strip()
    return WhatsAppError(outcome, code=code, title=title, detail=detail[:300],
                         retry_after=_retry_after(response.headers.get("Retry-After")),
                         http_status=status)


class CloudAPIClient:
    """POSTs template messages to the WhatsApp Cloud API. One instance per batch
    keeps its connection open; ``close()`` (or ``with``) ends it."""

    def __init__(self, base_url: str, phone_number_id: str, access_token: str,
                 api_version: str = "v21.0", timeout: float = 10.0, *,
                 transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.phone_number_id = phone_number_id
        self.api_version = api_version or "v21.0"
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0, pool=5.0),
            headers={"Authorization": f"Bearer {access_token}", "User-Agent": "Shopdesk"},
            transport=transport, follow_redirects=False)

    def __enter__(self) -> CloudAPIClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _url(self, *parts: str) -> str:
        path = "/".join(quote(part, safe="") for part in (self.api_version, *parts))
        return f"{self.base_url}/{path}"

    def _call(self, method: str, url: str, **kwargs) -> dict:
        try:
            response = self._http.request(method, url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                httpx.UnsupportedProtocol, httpx.ProxyError) as exc:
            # The request never left: safe to try again.
            raise WhatsAppError(RETRY, title="Could not reach the WhatsApp API",
                                detail=type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            # Sent, then no (complete) answer: it may have been delivered.
            raise WhatsAppError(UNKNOWN, title="No answer from the WhatsApp API",
                                detail=type(exc).__name__) from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(response)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise WhatsAppError(UNKNOWN, title="Unreadable answer from the WhatsApp API",
                                http_status=response.status_code)
        return payload

    def _send(self, to_e164: str, template: dict) -> str:
        if not isinstance(to_e164, str) or not _E164.fullmatch(to_e164):
            raise WhatsAppError(PERMANENT, title="Not a phone number in E.164 form")
        body = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": to_e164, "type": "template", "template": template}
        payload = self._call("POST", self._url(self.phone_number_id, "messages"), json=body)
        messages = payload.get("messages")
        wamid = messages[0].get("id") if isinstance(messages, list) and messages \
            and isinstance(messages[0], dict) else None
        if not isinstance(wamid, str) or not wamid:
            # Accepted (2xx) but without an id: it may go out, so never resend it.
            raise WhatsAppError(UNKNOWN, title="The WhatsApp API gave no message id")
        return wamid

    def send_template(self, to_e164: str, message: TemplateMessage) -> str:
        """Send one template message; returns its id ("wamid...")."""
        parameters = [{"type": "text", "parameter_name": name, "text": text}
                      for name, text in message.params.items()]
        template = {"name": message.name, "language": {"code": message.language}}
        if parameters:
            template["components"] = [{"type": "body", "parameters": parameters}]
        return self._send(to_e164, template)

    def send_test(self, to_e164: str) -> str:
        """Meta's ready-made "hello_world" template (every business account has it)."""
        return self._send(to_e164, {"name": "hello_world", "language": {"code": "en_US"}})

    def check(self) -> str:
        """The connected business number as Meta shows it ("+852 5555 0000")."""
        payload = self._call("GET", self._url(self.phone_number_id),
                             params={"fields": "display_phone_number,verified_name"})
        return str(payload.get("display_phone_number") or payload.get("verified_name") or "")


def client_from_config(*, timeout: float = 10.0,
                       transport: httpx.BaseTransport | None = None) -> CloudAPIClient:
    """A client for the saved credentials (sandbox or Meta). WhatsAppError("retry")
    while they are missing or unreadable: messages wait for the owner to fix them."""
    from domain.errors import ValidationError
    from domain.notify import whatsapp_config

    config = whatsapp_config.get_config()
    try:
        token = whatsapp_config.access_token()
    except ValidationError as exc:
        raise WhatsAppError(RETRY, title="WhatsApp credentials unreadable",
                            detail=str(exc)) from exc
    if not (config.phone_number_id and token):
        raise WhatsAppError(RETRY, title="WhatsApp is not set up")
    return CloudAPIClient(whatsapp_config.api_base(config), config.phone_number_id, token,
                          config.api_version or "v21.0", timeout, transport=transport)
