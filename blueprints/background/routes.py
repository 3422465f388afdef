"""Progress of background jobs, and their result files."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, render_template, send_file
from flask_babel import gettext as _
from flask_login import current_user, login_required

from blueprints.rendering import render
from domain.i18n import N_
from domain.notify.export_mail import DOWNLOAD_KEPT, download_expired, download_expires_at
from jobs.queue import get_job

bp = Blueprint("background", __name__, url_prefix="/jobs")

# Job kinds (Job.kind) as the progress page names them; an unknown kind shows its code.
JOB_KIND_LABELS = {
    "export_orders": N_("Excel export"),
    "export_email": N_("Excel export by email"),
    "backup": N_("Backup"),
    "papers": N_("Printing papers"),
    "create_shipments": N_("Creating shipments"),
    "bulk_ship": N_("Confirming shipments"),
    "tracking_import": N_("Importing tracking codes"),
}


@bp.app_context_processor
def job_kinds():
    return {"job_kind_labels": JOB_KIND_LABELS}


@bp.before_request
@login_required
def require_login():
    """Job pages are staff-only."""


def _own_job_or_404(job_id: str):
    job = get_job(job_id)
    # A job's file belongs to whoever asked for it (owners may open any). Another
    # staff member gets the same 404 as a job that does not exist: no hint it does.
    if job is None or (job.user_id != current_user.id and not current_user.is_owner):
        abort(404)
    return job


@bp.get("/<job_id>")
def progress(job_id: str):
    """The self-polling progress component (a full page without htmx)."""
    job = _own_job_or_404(job_id)
    return render("background/progress.html", block="job", job=job,
                  expired=download_expired(job), expires_at=download_expires_at(job))


@bp.get("/<job_id>/download")
def download(job_id: str):
    """The finished job's file, as an attachment, for DOWNLOAD_KEPT after it finished
    (the link in an "export ready" email says until when)."""
    job = _own_job_or_404(job_id)
    if download_expired(job):
        # 410 Gone: it existed and will not come back (the sweep deletes the file).
        return render_template("background/expired.html", job=job, kept_days=DOWNLOAD_KEPT.days,
                               title=_("This download expired")), 410
    if job.status != "done" or not job.result_path:
        abort(404)
    path = Path(job.result_path).resolve()
    generated = Path(current_app.config["GENERATED_FOLDER"]).resolve()
    if generated not in path.parents or not path.is_file():
        abort(404)
    return send_file(path, as_attachment=True, download_name=job.result_name or path.name)
