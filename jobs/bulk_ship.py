"""Background jobs for issue 12: "Confirm shipment" on many orders, and a tracking
file applied. Thin: they call domain/bulk_ship.py, report progress, and record what
they did in Job.result ({"done": n, "skipped": [{"number", "reason"}]}) for the
progress page, each reason in the language of the staff member who started it.

Both are idempotent: a second run finds the orders already shipped / coded and
changes nothing (the domain's guarded UPDATEs decide).
"""

from __future__ import annotations

from pathlib import Path

from flask import current_app
from flask_babel import force_locale, gettext, ngettext
from sqlalchemy import update

from domain import bulk_ship, tracking_import
from domain.actors import SYSTEM, Actor
from domain.db import db, write_transaction
from domain.models import Job, User
from jobs.exports import exporter_locale
from jobs.queue import set_progress

SHIP_KIND, IMPORT_KIND = "bulk_ship", "tracking_import"  # Job.kind (labelled on the page)


def kept_folder() -> Path:
    """Where an uploaded tracking file waits between preview and apply."""
    folder = Path(current_app.config["GENERATED_FOLDER"]) / "tracking-imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _actor(job_id: str) -> Actor:
    job = db.session.get(Job, job_id)
    user = db.session.get(User, job.user_id) if job is not None and job.user_id else None
    return Actor.staff(user) if user is not None else SYSTEM


def _record(job_id: str, result: bulk_ship.BulkResult) -> dict:
    with force_locale(exporter_locale(job_id)):
        summary = {"done": result.done, "shipped": len(result.shipped),
                   "coded": len(result.coded), "unchanged": result.unchanged,
                   "skipped": [{"number": number, "reason": error.render(gettext, ngettext)}
                               for number, error in result.skipped]}
    with write_transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(result=summary)
                        .execution_options(synchronize_session=False))
    return summary


def bulk_ship_job(job_id: str, order_ids: list[int]) -> dict:
    """Confirm shipment of the given orders; those that cannot ship are listed."""
    set_progress(job_id, 0, len(order_ids))
    result = bulk_ship.ship_orders(order_ids, actor=_actor(job_id),
                                   progress=lambda done, total: set_progress(job_id, done, total))
    return _record(job_id, result)


def tracking_import_job(job_id: str, token: str, filename: str, ship_all: bool = False) -> dict:
    """Apply the kept tracking file ``token`` (read again: what was previewed), then
    drop it. Rows that became invalid since the preview are listed as skipped."""
    path = kept_folder() / f"{token}.bin"
    data = tracking_import.parse(path.read_bytes(), filename)
    set_progress(job_id, 0, len(data.rows))
    result = bulk_ship.apply_tracking(
        data, actor=_actor(job_id), ship_all=ship_all,
        progress=lambda done, total: set_progress(job_id, done, total))
    summary = _record(job_id, result)
    for suffix in (".bin", ".json"):
        (kept_folder() / f"{token}{suffix}").unlink(missing_ok=True)
    return summary
