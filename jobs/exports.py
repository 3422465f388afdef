"""Background Excel export: thin, idempotent (a rerun rewrites the same file)."""

from __future__ import annotations

from pathlib import Path

from flask import current_app
from werkzeug.datastructures import MultiDict

from domain.exports import export_filename, export_orders, matching_ids
from domain.search import OrderQuery
from jobs.queue import finish_job, set_progress


def export_orders_job(job_id: str, order_ids: list[int] | None = None,
                      query_args: list[tuple[str, str]] | None = None) -> str:
    """Export the given ids, or every order matching ``query_args``, to instance/generated."""
    if order_ids is None:
        order_ids = matching_ids(OrderQuery.from_args(MultiDict(query_args or [])))
    folder = Path(current_app.config["GENERATED_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"export-{job_id}.xlsx"
    set_progress(job_id, 0, len(order_ids))
    export_orders(order_ids, path, progress=lambda done, total: set_progress(job_id, done, total))
    finish_job(job_id, str(path), export_filename())
    return str(path)
