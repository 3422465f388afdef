"""The orders list's rows, each one ready-made markup (issue 14).

Rendering 50 rows through filters, macros and an include per cell cost about two
thirds of the list's time: each gettext walked Flask-Babel's context, each money
and date went through Babel's pattern machinery, each url_for through the router.
Then, with ready strings, Jinja still spent most of the page on the rows: about 25
attribute lookups, escapes and tests per row. Here one pass per page looks up the
translations, the time zone, "today", the URL shapes and the money pattern once,
and each row is one format string whose every value is escaped (_esc: exactly as
markupsafe and Jinja's autoescape do): the template prints the rows as they come.

What a cell says is decided where it always was: the status labels and colours in
domain.status, the tracking refusal in domain.status.tracking_refusal, the items
summary in domain.list_view. Nothing here decides a rule.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel import Locale
from flask import url_for
from flask_babel import get_locale
from markupsafe import Markup, escape

from blueprints.i18n import Clock, RelativeTime, current_translations, money_formatter
from domain import status as rules
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings

_UTC = ZoneInfo("UTC")


def _esc(text: str) -> str:
    """``text`` escaped exactly as markupsafe.escape (and so Jinja's autoescape) writes
    it, for plain strings: a page of rows escapes about a thousand values, and
    markupsafe's escape() with its Markup wrapper cost three times these replaces.
    Markup stays as it is, as escape() leaves it."""
    if hasattr(text, "__html__"):
        return str(text.__html__())
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


def _url_shape(endpoint: str, key: str) -> str:
    """The endpoint's URL with a placeholder for ``key``, filled per row with quote()."""
    return url_for(endpoint, **{key: "__KEY__"}).replace("__KEY__", "{}")


def tracking_view(code, by_carrier, editable, title, edit_url, add_text, carrier_text) -> Markup:
    """The tracking cell when not being edited: a button that opens the editor, or the
    code locked with the reason as its tooltip (domain.status.tracking_refusal). Takes
    ready strings. The button's hx-target and hx-swap are inherited: from the list's
    <tbody>, or from the .tracking box of orders/_tracking.html, which calls this too."""
    shown = (f'<span class="code">{_esc(code)}</span>' if code
             else f'<span class="muted">{_esc(add_text) if editable else "—"}</span>')
    if editable:
        return Markup(f'<button type="button" class="tracking-view editable" '
                      f'hx-get="{_esc(edit_url)}" title="{_esc(title)}">{shown}</button>')
    carrier = f' <small class="muted">{_esc(carrier_text)}</small>' if by_carrier else ""
    return Markup(f'<span class="tracking-view locked" title="{_esc(title)}">'
                  f'{shown}{carrier}</span>')


_ROW = (
    '<tr class="order-row" id="row-{number}"><td class="sel"><label class="hit-area">'
    '<input type="checkbox" name="ids" value="{id}" form="bulk-form" aria-label="{select}">'
    '</label></td><td><a class="order-link" href="{href}">{number}</a></td>'
    '<td><span title="{ago}">{when}</span></td>'
    '<td><span class="cust">{name}</span><small>{phone}</small></td>'
    '<td class="items-summary">{items}{more}</td><td class="num">{total}</td>'
    '<td>{payment}</td><td>{shipping}{delivery}</td>'
    '<td id="status-{number}"><span class="badge badge-{colour}"{data_status}>{status}</span>'
    '{refunded}</td><td class="tracking-td" data-caption="{caption}">{tracking}</td></tr>'
)


def list_rows(orders, summaries, *, now: datetime | None = None) -> list[Markup]:
    """One row of markup per order of the page, in the reader's language."""
    tr = current_translations()
    gettext, ngettext = tr.ugettext, tr.ungettext
    settings = get_settings()
    locale = str(get_locale() or "en")
    money = money_formatter(locale, settings.currency)
    now = (now.replace(tzinfo=_UTC) if now else datetime.now(_UTC))
    ago = RelativeTime(now, Locale.parse(locale))  # Babel asked once per distinct answer
    clock = Clock(now, gettext)  # "Today 22:40", "Yesterday 09:15", "2026-11-26 20:24"
    select_text = gettext("Select %(number)s")
    refunded_text = gettext("Refunded %(amount)s")
    refunded_badge = escape(gettext("Refunded"))
    caption = escape(gettext("Tracking: "))
    add_text, carrier_text = gettext("Add tracking code"), gettext("(carrier)")
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
        summary = summaries.get(o.id)
        status, colour = statuses.get(o.status, (gettext("Draft"), "draft"))
        number = o.number or ""
        quoted = quote(number, safe="")
        delivery = "" if o.delivery_status == DeliveryStatus.UNFULFILLED.value \
            else deliveries.get(o.delivery_status, "")
        more = (ngettext("+%(num)d more", "+%(num)d more", summary.more)
                % {"num": summary.more}) if summary and summary.more else ""
        tracking = ""
        if o.kind == "placed":
            refusal = rules.tracking_refusal(o)
            cell = tracking_view(o.tracking_code, o.tracking_code_by_carrier, refusal is None,
                                 edit_title if refusal is None else gettext(refusal),
                                 edit_url.format(quoted), add_text, carrier_text)
            tracking = f'<div class="tracking" id="tracking-list-{_esc(number)}">{cell}</div>'
        refunded = (f' <span class="badge badge-grey" title="'
                    f'{_esc(refunded_text % {"amount": money(o.refunded_cents)})}">'
                    f'{refunded_badge}</span>') if o.refunded_cents else ""
        rows.append(Markup(_ROW.format(
            number=_esc(number), id=o.id, select=_esc(select_text % {"number": o.number}),
            href=_esc(draft_url.format(o.id) if o.kind == "draft" else detail_url.format(quoted)),
            ago=_esc(ago(when)), when=_esc(clock(when)),
            name=_esc(o.customer_name or ""), phone=_esc(o.customer_phone or ""),
            items=_esc(f"{summary.first_name} ×{summary.first_quantity}" if summary else "—"),
            more=f"<small>{_esc(more)}</small>" if more else "",
            total=_esc(money(o.total_cents)), payment=_esc(label(o.payment_method_name) or "—"),
            shipping=_esc(label(o.shipping_method_name)),
            delivery=f"<small>{_esc(delivery)}</small>" if delivery else "",
            colour=_esc(colour), data_status=f' data-status="{_esc(o.status)}"' if o.status else "",
            status=_esc(status), refunded=refunded, caption=caption, tracking=tracking)))
    return rows
