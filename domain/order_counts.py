"""How many orders there are per kind and status, without counting them.

The ``order_count`` table is kept by triggers on ``orders`` (migration
d1a3c5e7f9b2): every INSERT, DELETE and change of kind or status adjusts it in the
same statement, so in the same transaction as the domain action that made it. The
status tabs, the To do view, the list switch and the desk's nav badges read it
here: a few rows, whatever the number of orders (a COUNT ... GROUP BY over a
million orders took 80-130 ms).

``recount`` is the check: it counts the orders for real, under the write lock, and
puts right any row that drifted (a hand-edited database, a restore from an old
backup). ``flask orders recount`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, text

from domain.db import db, write_transaction
from domain.models import Order, OrderCount
from domain.status import OrderStatus

# The To do view's statuses (domain.search.TODO_STATUSES says the same; kept here too
# so this module stays below search in the import order).
TODO_STATUSES = (OrderStatus.PENDING_CONFIRMATION.value, OrderStatus.PROCESSING.value)


def all_counts(session=None) -> dict[tuple[str, str], int]:
    """{(kind, status): n}; a draft's status is ""."""
    session = session or db.session
    return {(kind, status): n for kind, status, n in session.execute(
        select(OrderCount.kind, OrderCount.status, OrderCount.n))}


def status_counts(kind: str = "placed") -> dict[str, int]:
    """Orders of ``kind`` per status, with "" = all of them and "todo" = the To do view."""
    counts = {status.value: 0 for status in OrderStatus}
    for (row_kind, status), n in all_counts().items():
        if row_kind == kind and status in counts:
            counts[status] = n
    counts[""] = sum(counts.values())
    counts["todo"] = sum(counts[s] for s in TODO_STATUSES)
    return counts


def list_counts() -> dict[str, int]:
    """Placed and draft orders: the list switch's "Paid" and "Unpaid"."""
    totals = {"placed": 0, "draft": 0}
    for (kind, _status), n in all_counts().items():
        totals[kind] = totals.get(kind, 0) + n
    return {"paid": totals["placed"], "unpaid": totals["draft"]}


def todo_count() -> int:
    counts = all_counts()
    return sum(counts.get(("placed", s), 0) for s in TODO_STATUSES)


def to_confirm_count() -> int:
    return all_counts().get(("placed", OrderStatus.PENDING_CONFIRMATION.value), 0)


@dataclass(frozen=True)
class Drift:
    kind: str
    status: str
    kept: int  # what the table said
    counted: int  # what the orders say

    def __str__(self) -> str:
        return f"{self.kind}/{self.status or '(draft)'}: kept {self.kept}, counted {self.counted}"


def recount(*, repair: bool = True) -> list[Drift]:
    """Count the orders for real and compare; with ``repair``, write the true counts.

    It runs in one write transaction. On SQLite that is the database's write lock, so
    no transition runs between the count and the repair. On PostgreSQL the count
    table is locked first (the triggers' UPDATEs wait for it, and it waits for any
    transaction that already changed a count), then the count runs on a snapshot
    taken after every such transaction committed.
    """
    with write_transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("LOCK TABLE order_count IN SHARE ROW EXCLUSIVE MODE"))
        status = func.coalesce(Order.status, "")
        counted = {(kind, st): n for kind, st, n in session.execute(
            select(Order.kind, status, func.count()).group_by(Order.kind, status))}
        kept = all_counts(session)
        drifts = [Drift(kind, st, kept.get((kind, st), 0), counted.get((kind, st), 0))
                  for kind, st in sorted(set(kept) | set(counted))
                  if kept.get((kind, st), 0) != counted.get((kind, st), 0)]
        if repair and drifts:
            session.execute(delete(OrderCount))
            session.add_all(OrderCount(kind=kind, status=st, n=n)
                            for (kind, st), n in counted.items())
    return drifts
