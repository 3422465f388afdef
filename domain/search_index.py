"""Text search over orders. A plain substring match for now; see issue 4."""

from __future__ import annotations

from sqlalchemy import or_, select

from domain.models import Order, OrderLine


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def text_match(q: str):
    pattern = f"%{_escape_like(q.lower())}%"
    fields = [Order.customer_name, Order.customer_phone, Order.customer_email, Order.number]
    line_match = select(OrderLine.order_id).where(or_(
        OrderLine.product_name.ilike(pattern, escape="\\"),
        OrderLine.barcode.ilike(pattern, escape="\\")))
    return or_(*(f.ilike(pattern, escape="\\") for f in fields), Order.id.in_(line_match))
