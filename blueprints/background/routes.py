"""Progress of background jobs, and their result files."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, send_file
from flask_login import current_user, login_required

from blueprints.rendering import render
from jobs.queue import get_job

bp = Blueprint("background", __name__, url_prefix="/jobs")


@bp.before_request
@login_required
def require_login():
    """Job pages are staff-only."""


def _own_job_or_404(job_id: str):
    job = get_job(job_id)
    # A job's file belongs to whoever asked for it (owners may open any).
    if job is None or (job.user_id != current_user.id and not current_user.is_owner):
        abort(404)
    return job


@bp.get("/<job_id>")
def progress(job_id: str):
    """The self-polling progress component (a full page without htmx)."""
    job = _own_job_or_404(job_id)
    return render("background/progress.html", block="job", job=job)


@bp.get("/<job_id>/download")
def download(job_id: str):
    """The finished job's file, as an attachment."""
    job = _own_job_or_404(job_id)
    if job.status != "done" or not job.result_path:
        abort(404)
    path = Path(job.result_path).resolve()
    generated = Path(current_app.config["GENERATED_FOLDER"]).resolve()
    if generated not in path.parents or not path.is_file():
        abort(404)
    return send_file(path, as_attachment=True, download_name=job.result_name or path.name)
