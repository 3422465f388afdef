"""Background "Create shipment" (issue 11): book orders with the carrier, one by one.

Thin and idempotent: each order goes through domain.shipments.create_shipment, which
claims the order before it calls the carrier, so a rerun (or two jobs on the same
selection) books nobody twice; orders booked already are reported as skipped.
"""

from __future__ import annotations

import logging

from flask_babel import force_locale, gettext, ngettext
from sqlalchemy import select, update

from domain.actors import SYSTEM, Actor
from domain.db import db, write_transaction
from domain.errors import DomainError
from domain.models import Job, Order, User
from domain.shipments import create_shipment
from jobs.exports import exporter_locale
from jobs.queue import set_progress

log = logging.getLogger(__name__)


def job_actor(job_id: str) -> Actor:
    """The staff member who started the job: the history says who booked."""
    job = db.session.get(Job, job_id)
    user = db.session.get(User, job.user_id) if job is not None and job.user_id else None
    return Actor.staff(user) if user is not None else SYSTEM


def record_result(job_id: str, done: int, skipped: list[dict[str, str]]) -> None:
    """The summary the progress page shows (Job.result)."""
    with write_transaction() as session:
        session.execute(update(Job).where(Job.id == job_id)
                        .values(result={"done": done, "skipped": skipped})
                        .execution_options(synchronize_session=False))


def create_shipments_job(job_id: str, order_ids: list[int],
                         weight_grams: int | None = None) -> dict:
    """Book each order with the carrier; refusals and carrier errors are skipped with the
    reason in the words of the staff member who asked."""
    actor = job_actor(job_id)
    locale = exporter_locale(job_id)
    numbers = dict(db.session.execute(select(Order.id, Order.number)
                                      .where(Order.id.in_(order_ids))).all())
    set_progress(job_id, 0, len(order_ids))
    done, skipped = 0, []
    for position, order_id in enumerate(order_ids, start=1):
        try:
            create_shipment(order_id, actor=actor, weight_grams=weight_grams)
            done += 1
        except DomainError as exc:
            with force_locale(locale):
                skipped.append({"number": numbers.get(order_id) or "—",
                                "reason": exc.render(gettext, ngettext)})
        except Exception as exc:  # noqa: BLE001  (recorded per order, not swallowed)
            # The carrier's answer was lost (a network error, a crash in an adapter): the
            # order page shows the unfinished booking; the rest of the selection goes on.
            db.session.rollback()
            log.exception("create_shipment failed for order %s", order_id)
            with force_locale(locale):
                skipped.append({"number": numbers.get(order_id) or "—", "reason": gettext(
                    "The booking did not finish (%(error)s); the order page says what to do.",
                    error=type(exc).__name__)})
        set_progress(job_id, position)
    record_result(job_id, done, skipped)
    return {"done": done, "skipped": skipped}
