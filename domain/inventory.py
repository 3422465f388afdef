"""Stock: holding, restoring, adjusting and setting it, each move a ledger row.

Stock never moves through Python arithmetic on a loaded row: the database
decides with conditional UPDATEs, so two customers can never buy the same
last unit. Rows are touched in variant-id order so that multi-line orders
cannot deadlock each other. Everything here runs inside the caller's write
transaction, except ``adjust_stock``, which is a whole action.

The ledger (StockMove) records every change with its reason, order, actor and
time, in the same transaction as the change: for every variant the sum of its
moves is its stock (0 while unlimited). ``reconcile`` checks that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Integer, Select, bindparam, event, func, insert, select, update

from domain.actors import SYSTEM, Actor
from domain.db import db, write_transaction
from domain.errors import InsufficientStock, NotFound, ValidationError
from domain.i18n import N_
from domain.models import Product, StockMove, Variant, utcnow

# Why stock moved; shown in the product page's ledger (translated there).
REASONS = {
    "opening": N_("Opening stock"),
    "order_hold": N_("Order hold"),
    "order_restock": N_("Restock on cancel"),
    "modification": N_("Order modification"),
    "adjustment": N_("Manual adjustment"),
    "import": N_("Import"),
    "tracking": N_("Stock tracking changed"),
}
MAX_STOCK = 10_000_000
NOTE_MAX = 200


def _totals(quantities: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: Counter[int] = Counter()
    for variant_id, qty in quantities:
        merged[variant_id] += qty
    return sorted((vid, qty) for vid, qty in merged.items() if qty)


def _move(variant_id: int, delta: int, reason: str, *, order=None, actor: Actor | None = None,
          note: str = "", now: datetime | None = None) -> dict:
    actor = actor or SYSTEM
    return dict(variant_id=variant_id, delta=delta, reason=reason, note=note[:NOTE_MAX],
                order_id=getattr(order, "id", None), order_number=getattr(order, "number", "") or "",
                actor_type=actor.type, actor_id=actor.id, actor_label=actor.label,
                created_at=now or utcnow())


def _record(moves: list[dict]) -> None:
    if moves:
        db.session.execute(insert(StockMove), moves)


# The guarded decrement, built once (checkout runs it under the write lock): taken only
# while enough is left, so two checkouts can never both get the last unit.
_QTY = bindparam("qty", type_=Integer)
_TAKE = (update(Variant)
         .where(Variant.id == bindparam("variant_id"), Variant.stock.is_not(None),
                Variant.stock >= _QTY)
         .values(stock=Variant.stock - _QTY)
         .execution_options(synchronize_session=False))


def hold_stock(quantities: Iterable[tuple[int, int]], *, order=None, actor: Actor | None = None,
               reason: str = "order_hold") -> None:
    """Take ``qty`` units of each variant, or raise InsufficientStock naming the item.

    A negative quantity gives units back (an order modification). On refusal the
    caller's rollback undoes any rows already decremented and their ledger rows.
    """
    session = db.session
    moves = []
    for variant_id, qty in _totals(quantities):
        if qty < 0:
            moves += _give_back(variant_id, -qty, reason, order=order, actor=actor)
            continue
        result = session.execute(_TAKE, {"variant_id": variant_id, "qty": qty})
        if result.rowcount == 1:
            moves.append(_move(variant_id, -qty, reason, order=order, actor=actor))
            continue
        row = session.execute(
            select(Variant.stock, Product.name, Variant.name)
            .join(Product, Product.id == Variant.product_id)
            .where(Variant.id == variant_id)
        ).first()
        if row is None:
            raise NotFound("Item %(id)s no longer exists.", id=variant_id)
        stock, product_name, variant_name = row
        if stock is None:  # unlimited stock: nothing to hold, nothing to record
            continue
        label = f"{product_name} ({variant_name})" if variant_name else product_name
        raise InsufficientStock(label, qty, stock)
    _record(moves)


def _give_back(variant_id: int, qty: int, reason: str, *, order=None,
               actor: Actor | None = None) -> list[dict]:
    result = db.session.execute(
        update(Variant)
        .where(Variant.id == variant_id, Variant.stock.is_not(None))
        .values(stock=Variant.stock + qty)
        .execution_options(synchronize_session=False)
    )
    # Unlimited variants (stock NULL) stay unlimited and record nothing.
    return [_move(variant_id, qty, reason, order=order, actor=actor)] if result.rowcount else []


def restock(quantities: Iterable[tuple[int, int]], *, order=None, actor: Actor | None = None,
            reason: str = "order_restock") -> None:
    """Give units back (one order's lines)."""
    moves = []
    for variant_id, qty in _totals(quantities):
        moves += _give_back(variant_id, qty, reason, order=order, actor=actor)
    _record(moves)


def restock_orders(lines: Iterable[tuple[int, str, int, int]], *, actor: Actor | None = None,
                   reason: str = "order_restock") -> None:
    """Give back many orders' lines, (order id, order number, variant id, qty), at once:
    one UPDATE per variant (in id order), one ledger row per order and variant."""
    lines = [line for line in lines if line[2] is not None and line[3]]
    tracked = set()
    for variant_id, qty in _totals((line[2], line[3]) for line in lines):
        result = db.session.execute(
            update(Variant)
            .where(Variant.id == variant_id, Variant.stock.is_not(None))
            .values(stock=Variant.stock + qty)
            .execution_options(synchronize_session=False))
        if result.rowcount:
            tracked.add(variant_id)
    per_order: Counter[tuple[int, str, int]] = Counter()
    for order_id, number, variant_id, qty in lines:
        if variant_id in tracked:
            per_order[(order_id, number, variant_id)] += qty
    now = utcnow()
    _record([
        _move(variant_id, qty, reason, actor=actor, now=now) | {"order_id": order_id,
                                                                "order_number": number or ""}
        for (order_id, number, variant_id), qty in sorted(per_order.items())])


def set_stock(variant_id: int, stock: int | None, *, reason: str = "adjustment",
              note: str = "", actor: Actor | None = None) -> int:
    """Make a variant's stock exactly ``stock`` (None: unlimited); returns the change.

    A compare-and-set: the UPDATE only applies to the count it was computed from,
    so a concurrent hold is never overwritten. Turning tracking off records the
    units leaving the count; turning it on records them arriving.
    """
    if stock is not None:
        stock = clean_stock(stock)
    for _attempt in range(5):
        current = db.session.execute(
            select(Variant.stock).where(Variant.id == variant_id)).first()
        if current is None:
            raise NotFound("Item %(id)s no longer exists.", id=variant_id)
        (old,) = current
        if old == stock:
            return 0
        guard = Variant.stock.is_(None) if old is None else Variant.stock == old
        result = db.session.execute(
            update(Variant).where(Variant.id == variant_id, guard).values(stock=stock)
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            delta = (stock or 0) - (old or 0)
            if old is None or stock is None:
                reason = "tracking" if reason == "adjustment" else reason
            if delta:
                _record([_move(variant_id, delta, reason, actor=actor, note=note)])
            return delta
    raise ValidationError("The stock of this item keeps changing; try again.")


def adjust_stock(variant_id: int, delta, *, note: str, actor: Actor) -> int:
    """A manual adjustment ("+12 received", "−1 damaged"): one action, one ledger row.
    Returns the new stock. Refuses unlimited items and a count below zero."""
    try:
        delta = int(str(delta).strip().replace("−", "-").replace("+", ""))
    except (TypeError, ValueError) as exc:
        raise ValidationError("Adjustment must be a whole number such as 12 or -1.") from exc
    if delta == 0:
        raise ValidationError("Adjustment must not be zero.")
    if abs(delta) > MAX_STOCK:
        raise ValidationError("Adjustment must be at most %(max)s units.", max=MAX_STOCK)
    note = (note or "").strip()
    if not note:
        raise ValidationError("Say why the stock changed (for example received or damaged).")
    if len(note) > NOTE_MAX or any(ord(ch) < 32 for ch in note):
        raise ValidationError("Reason must be one line of at most %(max)s characters.",
                              max=NOTE_MAX)
    with write_transaction() as session:
        row = session.execute(select(Variant.stock).where(Variant.id == variant_id)).first()
        if row is None:
            raise NotFound("Item %(id)s no longer exists.", id=variant_id)
        if row[0] is None:
            raise ValidationError("This item has unlimited stock; set a stock count first.")
        result = session.execute(
            update(Variant)
            .where(Variant.id == variant_id, Variant.stock.is_not(None),
                   Variant.stock + delta >= 0, Variant.stock + delta <= MAX_STOCK)
            .values(stock=Variant.stock + delta)
            .returning(Variant.stock)
            .execution_options(synchronize_session=False)).first()
        if result is None:
            raise ValidationError("Only %(stock)s in stock: the count cannot go below zero.",
                                  stock=row[0])
        _record([_move(variant_id, delta, "adjustment", actor=actor, note=note)])
        return result[0]


def clean_stock(value) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError("Stock must be a whole number.") from exc
    if not 0 <= number <= MAX_STOCK:
        raise ValidationError("Stock must be between 0 and %(max)s.", max=MAX_STOCK)
    return number


def ledger(variant_ids: Iterable[int], limit: int = 200) -> list[StockMove]:
    """The latest moves of these variants, newest first."""
    ids = list(variant_ids)
    if not ids:
        return []
    return list(db.session.scalars(
        select(StockMove).where(StockMove.variant_id.in_(ids))
        .order_by(StockMove.id.desc()).limit(limit)))


def reconcile() -> list[tuple[int, int | None, int]]:
    """Variants whose ledger does not sum to their stock: (id, stock, ledger sum).
    Empty when the books balance."""
    sums = (select(StockMove.variant_id, func.sum(StockMove.delta).label("total"))
            .group_by(StockMove.variant_id).subquery())
    rows = db.session.execute(
        select(Variant.id, Variant.stock, func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.variant_id == Variant.id)).all()
    return [(vid, stock, int(total)) for vid, stock, total in rows
            if int(total) != (stock or 0)]


# ------------------------------------------------------------------ low stock


def low_stock_clauses() -> tuple:
    """A variant is low now: its stock is counted (not unlimited), it has a
    threshold and is at or under it, and it and its product are on sale.
    For a SELECT that joins variant to product."""
    return (Variant.stock.is_not(None), Variant.low_stock_threshold.is_not(None),
            Variant.stock <= Variant.low_stock_threshold, Variant.active, Product.active)


def low_stock_variant_ids() -> Select:
    """SELECT of the ids of the variants low on stock now."""
    return (select(Variant.id).join(Product, Product.id == Variant.product_id)
            .where(*low_stock_clauses()))


def low_stock_count() -> int:
    """How many variants are low on stock (the desk's badge). The variant table is
    the catalogue (hundreds of rows, not orders): one pass with the product by its key."""
    return db.session.scalar(select(func.count(Variant.id)).select_from(Variant)
                             .join(Product, Product.id == Variant.product_id)
                             .where(*low_stock_clauses())) or 0



@event.listens_for(Variant, "after_insert")
def _opening_stock(_mapper, connection, target: Variant) -> None:
    """A variant created with stock starts its ledger with that count, whoever
    created it (the product editor, an import, the demo, a test's factory)."""
    if target.stock:
        actor = getattr(target, "opening_actor", None)
        reason = getattr(target, "opening_reason", None) or "opening"
        connection.execute(insert(StockMove).values(
            **_move(target.id, target.stock, reason, actor=actor)))
