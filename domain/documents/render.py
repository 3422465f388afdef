"""HTML -> PDF for the papers: load the orders, render each page in its language from
templates/documents/, and turn the whole set into one PDF with xhtml2pdf.

Many orders are one HTML document with a page break between orders, up to ``CHUNK``
orders per xhtml2pdf run (the font subset is embedded once per run); longer requests
are rendered chunk after chunk and joined with pypdf, which keeps a run's memory and
its cost per page down (measured: 100 per run is cheaper per page than 400).
Callers that want both cores (jobs/papers.py) split the ids across processes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

from flask import render_template
from flask_babel import force_locale, get_translations
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from domain.db import db
from domain.documents import KINDS, pages
from domain.documents.fonts import ensure_fonts
from domain.documents.safety import allowed_file, allowed_roots, make_link_callback, resource_policy
from domain.i18n import DEFAULT_LOCALE, N_, bind_translations, clean_locale
from domain.models import Order, Shipment, utcnow
from domain.store import get_settings, logo_file

CHUNK = 100  # orders per xhtml2pdf run: bigger runs cost more per page and hold more memory
_LOAD_CHUNK = 500  # ids per IN (...) query


# The PDF's title (what the browser's tab and a PDF reader show).
TITLES = {"invoice": N_("Invoice"), "packing_list": N_("Packing list"),
          "label": N_("Shipping label"), "pick_list": N_("Pick list")}


class RenderError(RuntimeError):
    """xhtml2pdf reported errors: the PDF would be wrong, so none is returned."""


@contextmanager
def in_language(locale: str):
    """Render in ``locale``, its translations looked up once (not per word)."""
    with force_locale(locale), bind_translations(get_translations()):
        yield


def store_locale() -> str:
    return clean_locale(getattr(get_settings(), "language", None), DEFAULT_LOCALE)


def order_locale(order: Order) -> str:
    """The language an order was placed in (older orders: the store's)."""
    return clean_locale(order.locale) or store_locale()


def load_orders(order_ids: Iterable[int]) -> list[Order]:
    """The orders with their lines, in the order of ``order_ids`` (unknown ids and
    repeats left out)."""
    wanted: list[int] = []
    seen: set[int] = set()
    for raw in order_ids:
        try:
            oid = int(raw)
        except (TypeError, ValueError):
            continue
        if oid not in seen:
            seen.add(oid)
            wanted.append(oid)
    found: dict[int, Order] = {}
    for start in range(0, len(wanted), _LOAD_CHUNK):
        chunk = wanted[start:start + _LOAD_CHUNK]
        for order in db.session.scalars(select(Order).where(Order.id.in_(chunk))
                                        .options(selectinload(Order.lines))):
            found[order.id] = order
    return [found[oid] for oid in wanted if oid in found]


def booked_shipments(order_ids: Sequence[int]) -> dict[int, Shipment]:
    """Booked shipments (with a tracking code) by order id: domain.shipments.shipment_for
    for many orders at once (a claim still being booked has no code and no label)."""
    found: dict[int, Shipment] = {}
    ids = list(order_ids)
    for start in range(0, len(ids), _LOAD_CHUNK):
        chunk = ids[start:start + _LOAD_CHUNK]
        for row in db.session.scalars(select(Shipment).where(Shipment.order_id.in_(chunk),
                                                             Shipment.tracking_code != "")):
            found[row.order_id] = row
    return found


def label_refusal_for(order: Order, shipment: Shipment | None) -> str | None:
    if order.shipping_kind != "logistics":
        return N_("Only logistics-automation orders have a shipping label.")
    if shipment is None:
        return N_("No shipment has been created with the carrier yet.")
    return None


def _store_head(roots) -> pages.StoreHead:
    logo = logo_file()
    allowed = allowed_file(str(logo), roots) if logo is not None else None
    return pages.store_head(get_settings(), str(allowed) if allowed else None)


def _order_pages(kind: str, orders: list[Order], store: pages.StoreHead,
                 locale: str | None) -> list[Markup]:
    shipments = booked_shipments([o.id for o in orders]) if kind == "label" else {}
    rendered: list[Markup] = []
    for order in orders:
        if kind == "label":
            shipment = shipments.get(order.id)
            if label_refusal_for(order, shipment) is not None:
                continue  # the caller said which were skipped (label_refusal)
        with in_language(locale or order_locale(order)):
            if kind == "invoice":
                context = pages.order_page(order, store, prices=True)
            elif kind == "packing_list":
                context = pages.order_page(order, store, prices=False)
            else:
                context = pages.label_page(order, shipment, store)
            # The template autoescapes every value; its output is the page's markup.
            rendered.append(Markup(render_template(f"documents/{kind}.html", page=context,
                                                   store=store)))
    return rendered


def _html(kind: str, page_markup: list[Markup], store: pages.StoreHead, lang: str,
          orders: list[Order]) -> str:
    with in_language(lang):
        title = pages.gettext(TITLES[kind])
    if len(orders) == 1 and orders[0].number:
        title = f"{title} {orders[0].number}"
    return render_template("documents/base.html", kind=kind, pages=page_markup, store=store,
                           family=ensure_fonts(), lang=lang.replace("_", "-"), title=title)


def html_to_pdf(html: str) -> bytes:
    """One xhtml2pdf run under the link callback and the resource policy."""
    from xhtml2pdf import pisa

    roots = allowed_roots()
    out = io.BytesIO()
    status = pisa.pisaDocument(html, dest=out, link_callback=make_link_callback(roots),
                               resource_policy=resource_policy(roots), encoding="utf-8")
    if status.err:
        raise RenderError(f"xhtml2pdf reported {status.err} error(s)")
    return out.getvalue()


def _join(pdfs: list[bytes]) -> bytes:
    if len(pdfs) == 1:
        return pdfs[0]
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in pdfs:
        writer.append(io.BytesIO(part))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def render_pdf(kind: str, order_ids: Iterable[int], *, locale: str | None = None) -> bytes:
    """See domain.documents.render_pdf."""
    if kind not in KINDS:
        raise ValueError(f"Unknown paper kind {kind!r}; one of {', '.join(KINDS)}")
    ensure_fonts()
    locale = clean_locale(locale) if locale else None
    roots = allowed_roots()
    store = _store_head(roots)
    orders = load_orders(order_ids)
    if not orders:
        raise LookupError("None of these orders exists.")
    if kind == "pick_list":
        lang = locale or store_locale()
        with in_language(lang):
            context = pages.pick_list_page(orders, store, utcnow())
            body = [Markup(render_template("documents/pick_list.html", page=context,
                                           store=store))]
            return html_to_pdf(_html(kind, body, store, lang, orders))
    parts: list[bytes] = []
    for start in range(0, len(orders), CHUNK):
        chunk = orders[start:start + CHUNK]
        body = _order_pages(kind, chunk, store, locale)
        if not body:
            continue
        lang = locale or order_locale(chunk[0])
        parts.append(html_to_pdf(_html(kind, body, store, lang, chunk)))
    if not parts:
        raise LookupError("None of these orders has a shipping label.")
    return _join(parts)
