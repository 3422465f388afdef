"""The pick list (issue 11, beyond the spec): the evening's warehouse walk.

For the selected orders, one row per product and variant with the total quantity to
pick, sorted by SKU (the shelf order in a store that names shelves by SKU), and under
each the orders it goes to, with their quantities.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from domain.models import Order


@dataclass
class PickRow:
    sku: str
    product_name: str
    variant_name: str
    quantity: int = 0
    # (order number, quantity), in the order the orders were given.
    orders: list[tuple[str, int]] = field(default_factory=list)


def pick_rows(orders: Iterable[Order]) -> list[PickRow]:
    """Rows for these orders. Lines of one variant are one row (by variant id; a line
    whose variant was deleted is keyed by its SKU and names as sold). Rows without a
    SKU come last, by name."""
    rows: dict[tuple, PickRow] = {}
    for order in orders:
        for line in order.lines:
            if line.quantity <= 0:
                continue
            key = (("v", line.variant_id) if line.variant_id is not None
                   else ("s", line.sku, line.product_name, line.variant_name))
            row = rows.get(key)
            if row is None:
                row = rows[key] = PickRow(line.sku or "", line.product_name,
                                          line.variant_name or "")
            row.quantity += line.quantity
            if row.orders and row.orders[-1][0] == order.number:
                row.orders[-1] = (order.number, row.orders[-1][1] + line.quantity)
            else:
                row.orders.append((order.number or "", line.quantity))
    return sorted(rows.values(), key=lambda r: (r.sku == "", r.sku.casefold(),
                                                r.product_name, r.variant_name))
