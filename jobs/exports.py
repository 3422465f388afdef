"""Background Excel export: thin, idempotent (a rerun rewrites the same file).

Two jobs: ``export_orders_job`` (the desk shows progress and a download) and
``export_and_email_job`` (the same file, then mailed to the staff member who
asked: the export-ready message is written in the transaction that records
the file, and its unique key keeps a rerun from writing a second one).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from domain.db import db, write_transaction
from domain.exports import export_filename, export_orders, matching_ids
from domain.models import Job, User, utcnow
from domain.notify import outbox
from domain.notify.export_mail import DOWNLOAD_KEPT, KIND, staff_locale
from domain.search import OrderQuery
from jobs.queue import finish_job, set_progress

EXPORT_KINDS = ("export_orders", "export_email")  # Job.kind of the two jobs below


def exporter_locale(job_id: str) -> str:
    """The language of the staff member who asked for the export (the job row
    records who), else the store's: the job runs outside any request."""
    job = db.session.get(Job, job_id)
    user = db.session.get(User, job.user_id) if job is not None and job.user_id else None
    return staff_locale(user)


def _write_export(job_id: str, order_ids: list[int] | None,
                  query_args: list[tuple[str, str]] | None) -> Path:
    """The workbook for the job, at instance/generated/export-<job id>.xlsx."""
    if order_ids is None:
        order_ids = matching_ids(OrderQuery.from_args(MultiDict(query_args or [])))
    folder = Path(current_app.config["GENERATED_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"export-{job_id}.xlsx"
    set_progress(job_id, 0, len(order_ids))
    # Headers and labels in the exporter's language (SPEC §7, issue 8).
    with force_locale(exporter_locale(job_id)):
        export_orders(order_ids, path, translate=gettext,
                      progress=lambda done, total: set_progress(job_id, done, total))
    return path


def export_orders_job(job_id: str, order_ids: list[int] | None = None,
                      query_args: list[tuple[str, str]] | None = None) -> str:
    """Export the given ids, or every order matching ``query_args``, to instance/generated."""
    path = _write_export(job_id, order_ids, query_args)
    finish_job(job_id, str(path), export_filename())
    return str(path)


def export_and_email_job(job_id: str, order_ids: list[int] | None = None,
                         query_args: list[tuple[str, str]] | None = None) -> str:
    """Export like ``export_orders_job``, then mail the file to whoever asked.

    One transaction records the file, marks the job done (so the email's
    download link works the moment the message can be sent) and writes the
    outbox row. The row's key ``export:<job id>`` is unique per recipient: a
    rerun rewrites the file and writes no second message.
    """
    path = _write_export(job_id, order_ids, query_args)
    name = export_filename()
    with write_transaction() as session:
        now = utcnow()
        session.execute(update(Job).where(Job.id == job_id)
                        .values(result_path=str(path), result_name=name[:255], status="done",
                                finished_at=now)
                        .execution_options(synchronize_session=False))
        job = session.get(Job, job_id)
        user = session.get(User, job.user_id) if job is not None and job.user_id else None
        # A staff member deactivated while the export ran gets no copy of the store's orders.
        if user is not None and user.active and user.email:
            outbox.write_messages([outbox.message_row(
                event_key=f"export:{job_id}", recipient=user.email, audience="staff",
                kind=KIND, user_id=user.id, now=now, params={"job_id": job_id})])
    return str(path)


def remove_expired_exports(now: datetime | None = None) -> int:
    """Delete the files of exports whose download has expired (DOWNLOAD_KEPT after
    they finished); the job rows stay, so the desk can say the download expired.
    For the periodic sweep; cheap when there is nothing to delete."""
    cutoff = (now or utcnow()) - DOWNLOAD_KEPT
    generated = Path(current_app.config["GENERATED_FOLDER"]).resolve()
    removed = 0
    with write_transaction() as session:
        rows = session.execute(select(Job.id, Job.result_path).where(
            Job.kind.in_(EXPORT_KINDS), Job.finished_at < cutoff,
            Job.result_path.is_not(None))).all()
        for job_id, result_path in rows:
            path = Path(result_path).resolve()
            # Only files Shopdesk generated: a row can never make the sweep delete elsewhere.
            if generated in path.parents:
                path.unlink(missing_ok=True)
                removed += 1
            session.execute(update(Job).where(Job.id == job_id).values(result_path=None)
                            .execution_options(synchronize_session=False))
    return removed
