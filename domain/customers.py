"""Customer lookup for the draft builder (issue 16): the customers of past orders
whose name, phone or email matches what the merchant typed, to fill in a draft.

The candidates come from the orders' text index (domain.search_index, the orders
search: CJK, full-width, spaced phones and country codes all match), newest first;
only a match in the customer's own fields counts (the index also holds the items),
and each customer is listed once, by phone or else email."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from domain.checkout import CustomerDetails
from domain.db import db
from domain.models import Order
from domain.search_index import needles, text_match
from domain.search_text import fold, phone_digits

LOOKUP_MAX = 8
# Orders read to find LOOKUP_MAX distinct customers: a regular's many orders count once.
CANDIDATES = 200


@dataclass(frozen=True)
class CustomerMatch:
    order_id: int  # the newest order these details come from
    name: str
    phone: str
    email: str
    address: str


def _own_text(order) -> list[str]:
    phone = fold(order.customer_phone)
    return [fold(order.customer_name), phone, *phone_digits(phone), fold(order.customer_email)]


def lookup_customers(q: str, *, limit: int = LOOKUP_MAX) -> list[CustomerMatch]:
    """Distinct customers of placed orders matching ``q`` by name, phone or email."""
    found = needles(str(q or "")[:100])
    if not found:
        return []
    orders = db.session.scalars(
        select(Order).where(Order.kind == "placed", text_match(q))
        .order_by(Order.placed_at.desc(), Order.id.desc()).limit(CANDIDATES))
    matches, seen = [], set()
    for order in orders:
        fields = _own_text(order)
        if not any(n in f for n in found for f in fields):
            continue  # matched an item name, not the customer
        key = order.customer_phone_e164 or fold(order.customer_phone) \
            or fold(order.customer_email) or fold(order.customer_name)
        if key in seen:
            continue
        seen.add(key)
        matches.append(CustomerMatch(order.id, order.customer_name, order.customer_phone or "",
                                     order.customer_email or "", order.shipping_address or ""))
        if len(matches) >= limit:
            break
    return matches


def details_from_order(order_id: int) -> CustomerDetails | None:
    """The customer details of a placed order (None: no such order)."""
    order = db.session.get(Order, order_id)
    if order is None or order.kind != "placed":
        return None
    return CustomerDetails(order.customer_name, order.customer_phone or "",
                           order.customer_email or "", order.shipping_address or "")
