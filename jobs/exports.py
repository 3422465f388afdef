"""Background Excel export: thin, idempotent (a rerun rewrites the same file)."""

from __future__ import annotations

from pathlib import Path

from flask import current_app
from flask_babel import force_locale, gettext
from werkzeug.datastructures import MultiDict

from domain.db import db
from domain.exports import export_filename, export_orders, matching_ids
from domain.i18n import DEFAULT_LOCALE, clean_locale
from domain.models import Job, User
from domain.search import OrderQuery
from domain.store import get_settings
from jobs.queue import finish_job, set_progress


def exporter_locale(job_id: str) -> str:
    """The language of the staff member who asked for the export (the job row
    records who), else the store's: the job runs outside any request."""
    job = db.session.get(Job, job_id)
    user = db.session.get(User, job.user_id) if job is not None and job.user_id else None
    return (clean_locale(getattr(user, "locale", None))
            or clean_locale(getattr(get_settings(), "language", None), DEFAULT_LOCALE))


def export_orders_job(job_id: str, order_ids: list[int] | None = None,
                      query_args: list[tuple[str, str]] | None = None) -> str:
    """Export the given ids, or every order matching ``query_args``, to instance/generated."""
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
    finish_job(job_id, str(path), export_filename())
    return str(path)
