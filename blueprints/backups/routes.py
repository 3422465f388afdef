"""Owner-only Backups page: list the archives, back up now (a job), download the latest."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, send_file, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.access import owner_only
from blueprints.backups.forms import BackupNowForm
from blueprints.rendering import is_htmx, render
from domain.backup import default_backup_dir, latest_backup, list_backups
from jobs.backups import backup_job
from jobs.queue import enqueue_job, get_job

bp = Blueprint("backups", __name__, url_prefix="/settings/backups")
owner_only(bp)  # backups hold every customer's details


def _backup_job(job_id: str | None):
    job = get_job(job_id or "")
    return job if job is not None and job.kind == "backup" else None


@bp.get("")
def index():
    """The archives in the backup folder, newest first, and a running backup's progress."""
    return render("settings/backups.html", block="settings", section="backups",
                  backups=list_backups(), folder=default_backup_dir(), form=BackupNowForm(),
                  job=_backup_job(request.args.get("job")))


@bp.post("")
def back_up_now():
    """Queue a backup; the page then follows its progress."""
    if not BackupNowForm().validate_on_submit():
        flash(_("This form has expired. Reload the page and try again."), "error")
        return redirect(url_for("backups.index"))
    try:
        job = enqueue_job("backup", backup_job, user_id=current_user.id)
    except Exception:  # Redis down: say so rather than fail with a 500
        flash(_("Background jobs are not running, so the backup could not start. Run "
                "“%(command)s” on the server instead.", command="flask --app app backup"), "error")
        return redirect(url_for("backups.index"))
    return redirect(url_for("backups.index", job=job.id))


@bp.get("/jobs/<job_id>")
def job_progress(job_id: str):
    """The self-polling progress component; when the backup is done the page reloads."""
    job = _backup_job(job_id)
    if job is None:
        abort(404)
    body = render("settings/backups.html", block="job", job=job)
    headers = {"HX-Refresh": "true"} if is_htmx() and job.status == "done" else {}
    return body, 200, headers


@bp.get("/latest")
def download_latest():
    """The newest readable archive, as an attachment."""
    latest = latest_backup()
    if latest is None:
        flash(_("There is no backup to download yet."), "error")
        return redirect(url_for("backups.index"))
    return send_file(latest.path, as_attachment=True, download_name=latest.name,
                     mimetype="application/x-tar", max_age=0)
