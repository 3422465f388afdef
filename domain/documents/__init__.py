"""Papers (SPEC §3; issue 11): invoice, packing list, shipping label and pick list,
rendered from HTML templates (templates/documents/) to PDF bytes with xhtml2pdf,
with a CJK font embedded and no network or file access beyond the store's own files.

Interface (blueprints/papers and jobs/papers call only these):

- ``KINDS``: "invoice", "packing_list", "label", "pick_list".
- ``render_pdf(kind, order_ids, *, locale=None) -> bytes``: one PDF for the given
  orders, in order (a page or more per order; the pick list is one list for all).
  Each order's invoice, packing list and label is in the order's own language unless
  ``locale`` is given; the pick list is in ``locale`` (the staff member's; None: the
  store's). Needs an app context, no request: usable from a forked worker.
  Unknown ids are left out; for "label", so are orders ``label_refusal`` refuses
  (check it first to say which were skipped). LookupError when nothing is left to
  print; ValueError for an unknown kind.
- ``label_refusal(order) -> str | None``: None when a shipping label can be printed
  for the order, else a message id saying why not.
- ``record_printed(kind, order_ids, *, actor)``: a "papers_printed" history event
  ({"kind": kind}) on each order (printed.py; ``PRINTED_EVENT``).

The work is in render.py (loading, languages, xhtml2pdf), pages.py (what each paper
prints), fonts.py (the CJK font), safety.py (what a render may read), codes.py
(barcodes), figures.py (paid or due), picklist.py and printed.py.
"""

from __future__ import annotations

from collections.abc import Iterable

KINDS = ("invoice", "packing_list", "label", "pick_list")
PRINTED_EVENT = "papers_printed"  # the history event of record_printed


def render_pdf(kind: str, order_ids: Iterable[int], *, locale: str | None = None) -> bytes:
    """One PDF of ``kind`` for these orders (see the module docstring)."""
    from domain.documents.render import render_pdf as _render

    return _render(kind, order_ids, locale=locale)


def label_refusal(order) -> str | None:
    """None if the order's shipping label can be printed (a logistics-automation order
    whose parcel the carrier booked), else the message id saying why not."""
    from domain.documents.render import label_refusal_for
    from domain.shipments import shipment_for

    if order.shipping_kind != "logistics":
        return label_refusal_for(order, None)
    return label_refusal_for(order, shipment_for(order.id))


def record_printed(kind: str, order_ids: Iterable[int], *, actor, now=None) -> int:
    """Leave a "papers_printed" history event on each order (see printed.py)."""
    from domain.documents.printed import record_printed as _record

    return _record(kind, order_ids, actor=actor, now=now)
