"""The orders list's rows as ready-made strings (issue 14).

Rendering 50 rows through filters, macros and an include per cell cost about two
thirds of the list's time: each gettext walked Flask-Babel's context, each money
and date went through Babel's pattern machinery, each url_for through the router.
Here one pass does the same work once per page: the translations, the time zone,
"today", the URL shapes and the money pattern are looked up once, and each row
only fills them in. The template then prints plain fields (autoescaped as ever).

What a cell says is decided where it always was: the status labels and colours in
domain.status, the tracking refusal in domain.status.tracking_refusal, the items
summary in domain.list_view. Nothing here decides a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_timedelta
from flask import url_for
from flask_babel import get_locale

from blueprints.i18n import current_translations, money_formatter
from domain import status as rules
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings

_UTC = ZoneInfo("UTC")


def _url_shape(endpoint: str, key: str) -> str:
    """The endpoint's URL with a placeholder for ``key``, filled per row with quote()."""
    return url_for(endpoint, **{key: "__KEY__"}).replace("__KEY__", "{}")


@dataclass(slots=True)
class Row:
    id: int
    number: str
    href: str
    is_draft: bool
    select_label: str
    when: str
    when_title: str
    customer_name: str
    customer_phone: str
    items: str  # "曲奇禮盒 ×2", or "—"
    items_more: str  # "+1 more", or ""
    total: str
    payment: str
    shipping: str
    delivery: str  # "Shipped", or "" while unfulfilled
    status: str  # the status value, or "" for a draft
    status_label: str
    status_colour: str
    refunded: str  # "Refunded HK$50.00" (the badge's tooltip), or ""
    placed: bool
    tracking_code: str
    tracking_by_carrier: bool
    tracking_title: str  # the cell's tooltip: "Click to edit…", or why it is locked
    tracking_editable: bool
    tracking_edit_url: str


def _tracking(refusal: str | None, gettext, edit_title: str) -> dict:
    if refusal is None:
        return {"tracking_editable": True, "tracking_title": edit_title}
    return {"tracking_editable": False, "tracking_title": gettext(refusal)}


def list_rows(orders, summaries, *, now: datetime | None = None) -> list[Row]:
    """One Row per order of the page, in the reader's language."""
    tr = current_translations()
    gettext, ngettext = tr.ugettext, tr.ungettext
    settings = get_settings()
    locale = str(get_locale() or "en")
    babel_locale = Locale.parse(locale)  # parsed once, not per row
    money = money_formatter(locale, settings.currency)
    zone = ZoneInfo(settings.timezone)
    now = (now.replace(tzinfo=_UTC) if now else datetime.now(_UTC))
    today = now.astimezone(zone).date()
    yesterday = today - timedelta(days=1)
    today_text, yesterday_text = gettext("Today %(time)s"), gettext("Yesterday %(time)s")
    select_text = gettext("Select %(number)s")
    refunded_text = gettext("Refunded %(amount)s")
    detail_url = _url_shape("orders.detail", "number")
    draft_url = url_for("drafts.edit", order_id=987654321).replace("987654321", "{}")
    edit_url = url_for("orders.edit_tracking", number="__KEY__", context="list") \
        .replace("__KEY__", "{}")
    edit_title = gettext("Click to edit the tracking code")
    statuses = {s.value: (gettext(s.label), s.colour) for s in OrderStatus}
    deliveries = {d.value: gettext(d.label) for d in DeliveryStatus}
    labels: dict[str, str] = {}  # method names: built-in ones are message ids

    def label(name: str | None) -> str:
        if not name:
            return ""
        if name not in labels:
            labels[name] = gettext(name)
        return labels[name]

    rows = []
    for o in orders:
        when = o.placed_at or o.created_at
        local = when.replace(tzinfo=_UTC).astimezone(zone)
        clock = f"{local:%H:%M}"
        day = local.date()
        if day == today:
            when_text = today_text % {"time": clock}
        elif day == yesterday:
            when_text = yesterday_text % {"time": clock}
        else:
            when_text = f"{local:%Y-%m-%d} {clock}"
        summary = summaries.get(o.id)
        status, colour = statuses.get(o.status, (gettext("Draft"), "draft"))
        quoted = quote(o.number or "", safe="")
        rows.append(Row(
            id=o.id, number=o.number or "", is_draft=o.kind == "draft",
            href=draft_url.format(o.id) if o.kind == "draft" else detail_url.format(quoted),
            select_label=select_text % {"number": o.number},
            when=when_text,
            when_title=format_timedelta(when.replace(tzinfo=_UTC) - now, add_direction=True,
                                        threshold=0.9, locale=babel_locale),
            customer_name=o.customer_name or "", customer_phone=o.customer_phone or "",
            items=f"{summary.first_name} ×{summary.first_quantity}" if summary else "—",
            items_more=(ngettext("+%(num)d more", "+%(num)d more", summary.more)
                        % {"num": summary.more}) if summary and summary.more else "",
            total=money(o.total_cents),
            payment=label(o.payment_method_name) or "—",
            shipping=label(o.shipping_method_name),
            delivery="" if o.delivery_status == DeliveryStatus.UNFULFILLED.value
            else deliveries.get(o.delivery_status, ""),
            status=o.status or "", status_label=status, status_colour=colour,
            refunded=refunded_text % {"amount": money(o.refunded_cents)}
            if o.refunded_cents else "",
            placed=o.kind == "placed",
            tracking_code=o.tracking_code or "",
            tracking_by_carrier=bool(o.tracking_code_by_carrier),
            **_tracking(rules.tracking_refusal(o), gettext, edit_title),
            tracking_edit_url=edit_url.format(quoted)))
    return rows
