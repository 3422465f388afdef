"""Sending a draft's checkout link (issue 16): a wa.me link with the message written
out, and a mailto: link, both in the customer's language (the draft's, else the store's).

The merchant sends them by hand from their own WhatsApp or mail app: nothing is billed
and nothing goes through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from domain.models import Order
from domain.notify.whatsapp import _money, _param, language_for, recipient_for
from domain.store import get_settings

_TEXT = {
    "en": "Hi {name}, here is your order from {store} ({total}). Open the link to choose how "
          "to pay and confirm: {link}",
    "zh_HK": "你好，{name}！這是你在{store}的訂單（{total}）。請打開連結選擇付款方式並確認：{link}",
}
_SUBJECT = {"en": "Your order from {store}", "zh_HK": "你在{store}的訂單"}
_FALLBACK_NAME = {"en": "there", "zh_HK": "你好"}


@dataclass(frozen=True)
class SendLinks:
    whatsapp: str | None  # https://wa.me/<digits>?text=..., None without a mobile number
    email: str | None  # mailto:..., None without an email address
    text: str  # the message itself, for copying


def send_links(order: Order, link: str) -> SendLinks:
    settings = get_settings()
    language = language_for(order)
    store = _param(settings.name) or "Shopdesk"
    name = _param(order.customer_name) or _FALLBACK_NAME[language]
    text = _TEXT[language].format(name=name, store=store, link=link,
                                  total=_money(order.total_cents, settings.currency, language))
    to = recipient_for(order) if order.customer_phone else None
    whatsapp = (f"https://wa.me/{''.join(ch for ch in to if ch.isdigit())}?text={quote(text, safe='')}"
                if to else None)
    address = (order.customer_email or "").strip()
    email = None
    if address and "@" in address and not any(ch in address for ch in "?&#\r\n<> "):
        subject = _SUBJECT[language].format(store=store)
        email = (f"mailto:{quote(address, safe='@')}?subject={quote(subject, safe='')}"
                 f"&body={quote(text, safe='')}")
    return SendLinks(whatsapp, email, text)
