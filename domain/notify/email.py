"""Email content, rendered at send time from the order as it is then (SPEC §2).

``render_email(message)`` turns one outbox row into a subject, a plain-text
part and an HTML part (templates/emails/), in the reader's language:

* a customer reads the order's language (``order.locale``, else the store's);
* the merchant reads the store's language;
* a staff member (``user_id``) reads their own, else the store's.

What an email says about the order (status, how to pay, tracking code,
reason) is read from the order now, not from the moment of the event. The
words of a few kinds describe a state ("still waiting for your payment"); if
the order has left that state by send time, the email for its current status
is sent instead (``_STATES``), so a late reminder never asks for money the
shop already has.

Links go to PUBLIC_URL (the customer's secret order page, the desk's order
page). The store's logo travels inside the message (a CID image): no remote
images, so nothing is fetched when the mail is opened.

Shared with other mails (domain/notify/export_mail.py): ``message_locale``,
``public_url``, ``logo_image``, ``render_pair`` and the layouts
templates/emails/_layout.html and _layout.txt. ``prefetch`` loads, for a batch
being delivered, what rendering reads besides orders and lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, partial
from io import BytesIO
from pathlib import Path
from urllib.parse import urlsplit

from babel.numbers import format_currency
from flask import current_app, render_template
from flask_babel import force_locale, get_locale, get_translations
from sqlalchemy import select

from domain.db import db
from domain.i18n import DEFAULT_LOCALE, N_, bind_translations, bound_translations, clean_locale
from domain.models import Order, OrderEvent, OutboxMessage, PaymentMethod, User
from domain.notify import email_modify
from domain.notify.kinds import CUSTOMER, MERCHANT, STAFF, status_email_kind
from domain.notify.transport import MailSettings, RenderedEmail
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings, logo_file

# ------------------------------------------------------------------ the words

# Subject lines: short, the order number first (what a customer scans in a list).
SUBJECTS = {
    "order_placed": N_("%(number)s Order received — %(store)s"),
    "payment_confirmed": N_("%(number)s Payment confirmed — %(store)s"),
    "proof_declined": N_("%(number)s Payment proof not accepted — %(store)s"),
    "order_shipped": N_("%(number)s Shipped — %(store)s"),
    "ready_for_pickup": N_("%(number)s Ready for pickup — %(store)s"),
    "pickup_completed": N_("%(number)s Picked up — %(store)s"),
    "order_rejected": N_("%(number)s Order canceled — %(store)s"),
    "order_expired": N_("%(number)s Canceled: payment deadline passed — %(store)s"),
    "payment_reminder": N_("%(number)s Payment reminder — %(store)s"),
    "payment_due": N_("%(number)s Awaiting your payment — %(store)s"),
    "proof_received": N_("%(number)s Payment proof received — %(store)s"),
    "order_processing": N_("%(number)s Being prepared — %(store)s"),
    "new_order": N_("New order %(number)s: %(customer)s, %(total)s — %(store)s"),
    "proof_uploaded": N_("%(number)s Payment proof to check — %(store)s"),
}

# The email's heading and its first sentence. Parameters: number, name (the
# customer), store, total, method.
HEADINGS = {
    "order_placed": N_("Thank you for your order"),
    "payment_confirmed": N_("Payment confirmed"),
    "proof_declined": N_("We could not confirm your payment"),
    "order_shipped": N_("Your order is on its way"),
    "ready_for_pickup": N_("Your order is ready for pickup"),
    "pickup_completed": N_("Picked up — thank you"),
    "order_rejected": N_("Your order was canceled"),
    "order_expired": N_("Your order was canceled"),
    "payment_reminder": N_("Reminder: your payment is due"),
    "payment_due": N_("Waiting for your payment"),
    "proof_received": N_("Payment proof received"),
    "order_processing": N_("Your order is being prepared"),
    "new_order": N_("Someone placed an order at your store"),
    "proof_uploaded": N_("A payment proof to check"),
}
INTROS = {
    "order_placed": N_("Hi %(name)s, we received your order %(number)s."),
    "payment_confirmed": N_("We received your payment for order %(number)s. Thank you!"),
    "proof_declined": N_("The shop checked the payment proof for order %(number)s "
                         "and could not confirm the payment."),
    "order_shipped": N_("Order %(number)s has been shipped."),
    "ready_for_pickup": N_("Order %(number)s is ready for you to pick up."),
    "pickup_completed": N_("You picked up order %(number)s. Thank you for shopping "
                           "with %(store)s!"),
    "order_rejected": N_("%(store)s canceled order %(number)s."),
    "order_expired": N_("Order %(number)s was canceled."),
    "payment_reminder": N_("Order %(number)s is still waiting for your payment."),
    "payment_due": N_("Order %(number)s is waiting for your payment."),
    "proof_received": N_("We received the payment proof for order %(number)s. The shop "
                         "will check it and confirm your payment soon."),
    "order_processing": N_("Your payment for order %(number)s is confirmed and the shop "
                           "is preparing your order."),
    "new_order": N_("%(name)s placed order %(number)s for %(total)s."),
    "proof_uploaded": N_("%(name)s uploaded a payment proof for order %(number)s "
                         "(%(total)s, %(method)s). Check that the money arrived, then "
                         "confirm or decline it."),
}
EXPIRED_SENTENCE = N_("The payment deadline passed before the shop received your payment.")

# A modified order and its balance (issue 12): their words live beside their facts.
SUBJECTS.update(email_modify.SUBJECTS)
HEADINGS.update(email_modify.HEADINGS)
INTROS.update(email_modify.INTROS)

MERCHANT_KINDS = frozenset({"new_order", "proof_uploaded"}) | email_modify.MERCHANT_KINDS
CUSTOMER_KINDS = frozenset(k for k in SUBJECTS if k not in MERCHANT_KINDS)


def _still_due(order: Order) -> bool:
    return order.status == OrderStatus.PENDING_PAYMENT


# Kinds whose words describe the order's state: sent only while it holds.
_STATES = {
    "payment_reminder": _still_due,
    "payment_due": _still_due,
    "proof_declined": _still_due,
    "proof_received": lambda o: o.status == OrderStatus.PENDING_CONFIRMATION,
    "order_processing": lambda o: (o.status == OrderStatus.PROCESSING
                                   and o.delivery_status == DeliveryStatus.UNFULFILLED),
    "ready_for_pickup": lambda o: (o.status == OrderStatus.PROCESSING
                                   and o.delivery_status == DeliveryStatus.READY_FOR_PICKUP),
}


def customer_kind(kind: str, order: Order) -> str:
    """The kind actually sent: ``kind``, or the current status's when the order moved on."""
    holds = _STATES.get(kind)
    if holds is not None and not holds(order):
        return status_email_kind(order)
    return kind


# ------------------------------------------------------------------ the language


@contextmanager
def in_language(locale: str) -> Iterator[None]:
    """Render in ``locale``, its translations looked up once (not per word)."""
    with force_locale(locale), bind_translations(get_translations()):
        yield


def gettext(msgid: str, **variables) -> str:
    """Flask-Babel's gettext, reading the translations ``in_language`` bound."""
    translations = bound_translations() or get_translations()
    text = translations.ugettext(msgid)
    return text % variables if variables else text


# ------------------------------------------------------------------ who, where


def _store_locale() -> str:
    return clean_locale(getattr(get_settings(), "language", None), DEFAULT_LOCALE)


def message_locale(message: OutboxMessage, order: Order | None = None) -> str:
    """The language the message is written in (see the module docstring)."""
    if message.audience == CUSTOMER and order is not None:
        return clean_locale(order.locale) or _store_locale()
    if message.audience == STAFF and message.user_id:
        user = db.session.get(User, message.user_id)
        if user is not None:
            return clean_locale(user.locale) or _store_locale()
    return _store_locale()


def public_url(endpoint: str, **values) -> str:
    """An absolute link under PUBLIC_URL (no request needed: the job has none)."""
    base = urlsplit((current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:5000").strip())
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path.rstrip("/") or "/",
                                       url_scheme=base.scheme or "https")
    return adapter.build(endpoint, values, force_external=True)


def sender_for(settings: MailSettings) -> tuple[str, str, str]:
    """(From address, From name, Reply-To) for the store's messages.

    From: MAIL_FROM, else the store's email, else no-reply at the public host.
    Replies go to the store's email when mail is sent from another address.
    """
    store = get_settings()
    store_email = (store.email or "").strip()
    sender = (settings.sender or "").strip() or store_email or _default_sender()
    reply_to = store_email if store_email and store_email.lower() != sender.lower() else ""
    return sender, settings.sender_name or store.name or "Shopdesk", reply_to


def _default_sender() -> str:
    host = urlsplit(current_app.config.get("PUBLIC_URL") or "").hostname or ""
    if "." in host and not re.fullmatch(r"[\d.]+", host):  # a name, not an IP address
        return f"no-reply@{host}"
    return "shopdesk@localhost"


# ------------------------------------------------------------------ the logo


@dataclass(frozen=True)
class InlineImage:
    cid: str
    data: bytes
    subtype: str  # png | jpeg
    width: int  # as shown (CSS pixels); the image itself has twice as many for sharp screens
    height: int

    @property
    def part(self) -> tuple[str, bytes, str]:
        return (self.cid, self.data, self.subtype)


LOGO_BOX = (220, 64)  # shown at most this big
_logo_cache: dict[tuple[str, int, int], InlineImage] = {}


def logo_image() -> InlineImage | None:
    """The store's logo, scaled for the email header, or None without one.

    Reduced once per logo file (cached by path, size and mtime): ten thousand
    order emails carry a few kilobytes each, not the merchant's full upload.
    """
    path = logo_file()
    if path is None:
        return None
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    cached = _logo_cache.get(key)
    if cached is None:
        cached = _prepare_logo(path)
        _logo_cache.clear()
        _logo_cache[key] = cached
    return cached


def _prepare_logo(path: Path) -> InlineImage:
    from PIL import Image

    image = Image.open(BytesIO(path.read_bytes()))
    source_format = image.format
    image.load()
    width, height = image.size
    scale = min(LOGO_BOX[0] / width, LOGO_BOX[1] / height, 1.0)
    shown = (max(1, round(width * scale)), max(1, round(height * scale)))
    image.thumbnail((shown[0] * 2, shown[1] * 2))
    out = BytesIO()
    if source_format == "JPEG":
        image.convert("RGB").save(out, format="JPEG", quality=88)
        subtype = "jpeg"
    else:
        image.save(out, format="PNG", optimize=True)
        subtype = "png"
    # A fixed content id per logo: the same logo reads the same in every message.
    name = re.sub(r"[^A-Za-z0-9]", "", path.stem)[-24:] or "store"
    return InlineImage(cid=f"{name}@shopdesk.local", data=out.getvalue(), subtype=subtype,
                       width=shown[0], height=shown[1])


# ------------------------------------------------------------------ plain text

# Break at plain spaces and between CJK characters; never at a no-break space
# (Babel puts U+202F between a time and "AM").
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_TOKENS = re.compile(f"[ \\t]+|[{_CJK}]|[^ \\t{_CJK}]+")
# Punctuation that must not start a line (it stays with the character before it).
_NO_LINE_START = set("，。、；：！？）」』】》〉,.;:!?)%")
TEXT_WIDTH = 72


def display_width(text: str) -> int:
    """Columns a monospace reader gives the text: CJK characters take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(label: str, value: str, width: int = 44) -> str:
    """'Subtotal ........ HK$256.00' without the dots: the value right-aligned."""
    gap = max(2, width - display_width(label) - display_width(value))
    return f"{label}{' ' * gap}{value}"


def text_facts(rows) -> str:
    """(label, value) rows as aligned 'Label:  value' lines; empty values left out,
    a value's further lines indented under its first."""
    shown = [(str(label), str(value)) for label, value in rows if value]
    if not shown:
        return ""
    # "Label:" / "標籤：": the colon is the language's own.
    shown = [(gettext("%(label)s:", label=label), value) for label, value in shown]
    width = max(display_width(label) for label, _ in shown) + 1
    lines = []
    for label, value in shown:
        first, *rest = value.strip().splitlines() or [""]
        lines.append(f"{label}{' ' * (width - display_width(label))}{first.strip()}")
        lines.extend(f"{' ' * width}{more.strip()}" for more in rest if more.strip())
    return "\n".join(lines)


def underline(text: str, char: str = "-") -> str:
    return char * max(3, display_width(text))


def _wrap_line(line: str, width: int) -> list[str]:
    if display_width(line) <= width:
        return [line]
    indent = line[:len(line) - len(line.lstrip(" "))]
    hang = indent + ("  " if line[len(indent):][:2] in ("- ", "* ", "• ") else "")
    # Words as (text, space before it); a line is a list of them.
    words: list[tuple[str, bool]] = []
    space = False
    for token in _TOKENS.findall(line[len(indent):]):
        if token[0] in " \t":
            space = True
            continue
        words.append((token, space))
        space = False
    lines: list[list[tuple[str, bool]]] = [[]]
    used = display_width(indent)  # columns taken on the last line
    for word, sp in words:
        current = lines[-1]
        cost = display_width(word) + (1 if sp and current else 0)
        if current and used + cost > width:
            carry = []
            # Closing punctuation never starts a line: it takes the character before along.
            if word[0] in _NO_LINE_START and len(current) > 1 and not sp:
                carry = [current.pop()]
            lines.append(carry + [(word, sp)])
            used = display_width(hang) + sum(display_width(w) for w, _ in lines[-1])
        else:
            current.append((word, sp))
            used += cost
    out = []
    for n, words_on_line in enumerate(lines):
        text = "".join((" " if sp and k else "") + w for k, (w, sp) in enumerate(words_on_line))
        out.append(((indent if n == 0 else hang) + text).rstrip())
    return out


def finish_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Tidy a rendered .txt template: wrap long lines (links stay whole), no
    trailing spaces, at most one blank line in a row."""
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.rstrip()
        if line == "--":  # the signature separator keeps its space ("-- ")
            line = "-- "
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        out.extend(_wrap_line(line, width))
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ rendering


def render_pair(name: str, **context) -> tuple[str, str]:
    """(text, html) of templates/emails/<name>.txt and .html, in the current locale
    (call it inside ``in_language``). Fills in what the layouts read when the caller
    did not: the store, its logo, the language tag and the plain-text helpers."""
    context.setdefault("store", get_settings())
    context.setdefault("logo", logo_image())
    context.setdefault("lang", str(get_locale() or DEFAULT_LOCALE).replace("_", "-"))
    context.setdefault("price", partial(money_text, currency=context["store"].currency))
    for key, helper in (("pad", pad), ("underline", underline), ("text_facts", text_facts)):
        context.setdefault(key, helper)
    html = render_template(f"emails/{name}.html", **context)
    text = finish_text(render_template(f"emails/{name}.txt", **context))
    return text, html


def render_email(message: OutboxMessage) -> RenderedEmail:
    """The email for one outbox row, from the order as it is now."""
    if message.kind == "export_ready":
        from domain.notify.export_mail import render_export_email

        return render_export_email(message)
    order = db.session.get(Order, message.order_id) if message.order_id else None
    if order is None:
        raise LookupError(f"Message {message.id} ({message.kind}) has no order to describe.")
    if message.audience == MERCHANT or message.kind in MERCHANT_KINDS:
        template, kind = "merchant", message.kind
    elif message.kind in CUSTOMER_KINDS:
        template, kind = "customer", customer_kind(message.kind, order)
    else:
        raise LookupError(f"No email for message kind {message.kind!r}.")
    store = get_settings()
    logo = logo_image()
    with in_language(message_locale(message, order)):
        context = _context(message, order, kind, store, logo)
        subject = _one_line(gettext(SUBJECTS[kind], number=order.number, store=store.name,
                                    customer=order.customer_name,
                                    total=context["total_text"]))
        text, html = render_pair(template, subject=subject, **context)
    return RenderedEmail(subject=subject, text=text, html=html,
                         inline_images=[logo.part] if logo else [])


# Kinds whose email reads its order event (a decline's reason, a replaced proof).
_EVENT_KINDS = ("proof_declined", "proof_uploaded", *email_modify.EVENT_KINDS)


def prefetch(messages: list[OutboxMessage]) -> list:
    """What rendering these messages reads besides their orders and lines, loaded in
    a few queries for a whole batch (domain/notify/delivery.py keeps the objects alive
    while it renders, so each render finds them in the session)."""
    loaded: list = list(db.session.scalars(select(PaymentMethod)))  # a handful of rows
    event_ids = {m.event_id for m in messages if m.event_id and m.kind in _EVENT_KINDS}
    if event_ids:
        loaded += db.session.scalars(select(OrderEvent).where(OrderEvent.id.in_(event_ids)))
    user_ids = {m.user_id for m in messages if m.user_id}
    if user_ids:
        loaded += db.session.scalars(select(User).where(User.id.in_(user_ids)))
    return loaded


def _event(message: OutboxMessage) -> OrderEvent | None:
    return db.session.get(OrderEvent, message.event_id) if message.event_id else None


def money_text(cents: int, currency: str) -> str:
    """Money as the app's ``money`` filter writes it (Babel, the current locale)."""
    return _money(int(cents), currency, str(get_locale() or DEFAULT_LOCALE))


@lru_cache(maxsize=4096)
def _money(cents: int, currency: str, locale: str) -> str:
    # Cached: the same prices and fees come back in every email of a batch.
    return format_currency(Decimal(cents) / 100, currency, currency_digits=True, locale=locale)


def _context(message: OutboxMessage, order: Order, kind: str, store, logo) -> dict:
    """What the templates need, decided here once for the HTML and the text part."""
    from domain import payments, proofs

    # The event's details hold what the order does not: a decline's reason, a replaced proof.
    event = _event(message) if kind in _EVENT_KINDS else None
    details = (event.details or {}) if event is not None else {}
    awaiting = order.kind == "placed" and order.status == OrderStatus.PENDING_PAYMENT
    declined_reason = ""
    if awaiting and event is not None and event.type == "proof_declined":
        declined_reason = details.get("reason") or ""
    elif awaiting and order.proof_uploaded_at and message.audience == CUSTOMER:
        # Declined before: a reminder (or a late email) repeats why.
        declined_reason = proofs.customer_messages(order).get("declined_reason", "")
    expired = proofs.canceled_for_late_payment(order)
    canceled = order.status == OrderStatus.CANCELED
    delivery = DeliveryStatus(order.delivery_status) if order.delivery_status else None
    total_text = money_text(order.total_cents, store.currency)
    method = gettext(order.payment_method_name) if order.payment_method_name else ""
    modified = email_modify.context(order, kind, details,
                                    partial(money_text, currency=store.currency))
    return dict(
        kind=kind, audience=message.audience, order=order, store=store, logo=logo,
        heading=HEADINGS[kind], intro=INTROS[kind],
        words=dict(number=order.number, name=order.customer_name, store=store.name,
                   total=total_text, method=method, amount=modified["amount_text"]),
        **modified,
        total_text=total_text,
        order_url=public_url("storefront.order", token=order.public_token),
        desk_url=public_url("orders.detail", number=order.number),
        review_url=public_url("review.queue"),
        status_label=order.status_info.label if order.status_info else "",
        delivery_label=delivery.label if delivery and delivery != DeliveryStatus.UNFULFILLED
        else "",
        awaiting=awaiting,
        instructions=payments.payment_instructions(order) if awaiting else "",
        # The typed details (FPS ID, bank account, PayMe link) and the reference to write.
        payment=payments.payment_info(order) if awaiting else None,
        deadline_at=order.payment_deadline_at if awaiting else None,
        declined_reason=declined_reason,
        canceled=canceled, expired=expired, expired_sentence=EXPIRED_SENTENCE,
        cancel_reason=order.cancel_reason if canceled and not expired else "",
        tracking_code=order.tracking_code if delivery == DeliveryStatus.SHIPPED else "",
        ready_for_pickup=delivery == DeliveryStatus.READY_FOR_PICKUP,
        resend=(message.params or {}).get("resend"),
        proof_replaced=bool(details.get("replaced")) if kind == "proof_uploaded" else False,
        proof_reused=proofs.reused_proof_order_numbers(order) if kind == "proof_uploaded"
        else [],
    )
