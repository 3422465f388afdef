"""Holding and restoring stock with conditional UPDATEs, inside the caller's transaction.

Stock never moves through Python arithmetic on a loaded row: the database
decides, so two customers can never buy the same last unit. Rows are touched
in variant-id order so that multi-line orders cannot deadlock each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from sqlalchemy import select, update

from domain.db import db
from domain.errors import InsufficientStock, NotFound
from domain.models import Product, Variant


def _totals(quantities: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: Counter[int] = Counter()
    for variant_id, qty in quantities:
        merged[variant_id] += qty
    return sorted((vid, qty) for vid, qty in merged.items() if qty)


def hold_stock(quantities: Iterable[tuple[int, int]]) -> None:
    """Take ``qty`` units of each variant, or raise InsufficientStock naming the item.

    Must run inside a write transaction; on refusal the caller's rollback
    undoes any rows already decremented.
    """
    session = db.session
    for variant_id, qty in _totals(quantities):
        if qty < 0:
            restock([(variant_id, -qty)])
            continue
        result = session.execute(
            update(Variant)
            .where(Variant.id == variant_id, Variant.stock.is_not(None), Variant.stock >= qty)
            .values(stock=Variant.stock - qty)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            continue
        row = session.execute(
            select(Variant.stock, Product.name, Variant.name)
            .join(Product, Product.id == Variant.product_id)
            .where(Variant.id == variant_id)
        ).first()
        if row is None:
            raise NotFound("Item %(id)s no longer exists.", id=variant_id)
        stock, product_name, variant_name = row
        if stock is None:  # unlimited stock: nothing to hold
            continue
        label = f"{product_name} ({variant_name})" if variant_name else product_name
        raise InsufficientStock(label, qty, stock)


def restock(quantities: Iterable[tuple[int, int]]) -> None:
    """Give units back. Unlimited variants (stock NULL) stay unlimited."""
    session = db.session
    for variant_id, qty in _totals(quantities):
        session.execute(
            update(Variant)
            .where(Variant.id == variant_id, Variant.stock.is_not(None))
            .values(stock=Variant.stock + qty)
            .execution_options(synchronize_session=False)
        )

