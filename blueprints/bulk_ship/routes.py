"""Bulk tracking import and bulk "Confirm shipment" (issue 12).

HTTP only: the rules are domain/tracking_import.py (what a file would do) and
domain/bulk_ship.py (doing it); the work runs in one background job
(jobs/bulk_ship.py) shown by the progress component of blueprints/background.

The uploaded file waits on the server between preview and apply (instance
generated/tracking-imports, a random name tied to the uploader, dropped after the
job or after a day), as the products import does: the browser carries only its
token, so what is applied is exactly the file that was previewed.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField

from blueprints.i18n import translate_error
from blueprints.rendering import is_htmx, render
from domain import tracking_import
from domain.catalog_parse import MAX_BYTES
from domain.errors import DomainError
from domain.exports import matching_ids
from domain.search import OrderQuery
from jobs.bulk_ship import IMPORT_KIND, SHIP_KIND, bulk_ship_job, kept_folder, tracking_import_job

bp = Blueprint("bulk_ship", __name__, url_prefix="/orders/bulk")

KEEP_SECONDS = 24 * 3600
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
MAX_SELECTED = 10_000
PREVIEW_SHOWN = 500  # rows listed on the preview; the counts cover them all


class UploadForm(FlaskForm):
    file = FileField()
    ship_all = BooleanField()


class ApplyForm(FlaskForm):
    token = HiddenField()


class ShipForm(FlaskForm):
    """The orders list's bulk form: only its CSRF token is a form field."""


@bp.before_request
@login_required
def require_login():
    """Desk pages: staff only."""


# ------------------------------------------------------------------ kept uploads


def _sweep(folder: Path) -> None:
    """Uploads nobody applied are dropped after a day."""
    cutoff = time.time() - KEEP_SECONDS
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def _keep(data: bytes, filename: str, ship_all: bool, rows: int) -> str:
    folder = kept_folder()
    _sweep(folder)
    token = secrets.token_urlsafe(24)
    (folder / f"{token}.bin").write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps(
        {"filename": filename, "user_id": current_user.id, "ship_all": ship_all,
         "rows": rows}))
    return token


def _kept(token: str) -> dict | None:
    if not token or not TOKEN_RE.match(token):
        return None
    try:
        meta = json.loads((kept_folder() / f"{token}.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("user_id") != current_user.id or not (kept_folder() / f"{token}.bin").is_file():
        return None  # another person's upload is not yours to apply
    return meta


def _forget_meta(token: str) -> None:
    # The .bin stays for the job, which drops it; the meta goes now so one preview
    # is applied once.
    (kept_folder() / f"{token}.json").unlink(missing_ok=True)


# ------------------------------------------------------------------ import views


def _page(form: UploadForm, *, error: str | None = None, status: int = 200, **context):
    context.setdefault("preview", None)
    return render("bulk_ship/import.html", block="importer", form=form, error=error,
                  header_name=tracking_import.header_name, labels=tracking_import.ACTION_LABELS,
                  shown_limit=PREVIEW_SHOWN, max_rows=f"{tracking_import.MAX_ROWS:,}",
                  max_mb=MAX_BYTES // (1024 * 1024), **context), status


def _progress(job):
    """The job's progress component: in place for htmx, else its page."""
    if is_htmx():
        return render("background/progress.html", block="job", job=job, expired=False,
                      expires_at=None)
    return redirect(url_for("background.progress", job_id=job.id), 303)


@bp.get("/tracking")
def tracking_form():
    """The tracking import page: upload a CSV or Excel file."""
    return _page(UploadForm())


@bp.post("/tracking/preview")
def tracking_preview():
    """Read the upload and show what applying it would do; nothing is changed."""
    form = UploadForm()
    if not form.validate_on_submit():
        return _page(form, error=_("The form expired; upload the file again."), status=400)
    upload = form.file.data
    if not upload or not getattr(upload, "filename", ""):
        return _page(form, error=_("Choose a CSV or Excel file to upload."), status=422)
    data = upload.read(MAX_BYTES + 1)
    filename = Path(upload.filename.replace("\\", "/")).name[:200]
    ship_all = bool(form.ship_all.data)
    try:
        result = tracking_import.preview(tracking_import.parse(data, filename), ship_all=ship_all)
    except DomainError as exc:
        return _page(form, error=translate_error(exc), status=422)
    token = _keep(data, filename, ship_all, len(result.rows)) if result.has_changes else ""
    listed = [row for row in result.rows if row.action != tracking_import.UNCHANGED]
    return _page(form, preview=result, filename=filename, listed=listed[:PREVIEW_SHOWN],
                 more=max(0, len(listed) - PREVIEW_SHOWN), ship_all=ship_all,
                 apply_form=ApplyForm(token=token))


@bp.post("/tracking/apply")
def tracking_apply():
    """Apply the previewed file in one background job; show its progress."""
    form = ApplyForm()
    if not form.validate_on_submit():
        abort(400)
    token = form.token.data or ""
    meta = _kept(token)
    if meta is None:
        message = _("That upload has expired or was already applied; upload the file again.")
        if is_htmx():
            return _page(UploadForm(formdata=None), error=message, status=409)
        flash(message, "error")
        return redirect(url_for("bulk_ship.tracking_form"), 303)
    _forget_meta(token)
    from jobs.queue import enqueue_job

    job = enqueue_job(IMPORT_KIND, tracking_import_job, token, str(meta.get("filename", "")),
                      bool(meta.get("ship_all")), user_id=current_user.id,
                      total=int(meta.get("rows") or 0))
    return _progress(job)


# ------------------------------------------------------------------ confirm shipment


def _ship_ids(form) -> list[int]:
    """The ticked orders, or every order matching the list's query (scope=matching)."""
    scope = form.get("scope", "selected")
    if scope not in ("selected", "matching"):
        raise DomainError("The selection is not valid; reload the page and select again.")
    if scope == "matching":
        return matching_ids(OrderQuery.from_args(form))
    raw = form.getlist("ids")
    if len(raw) > MAX_SELECTED or not all(v.isdigit() and len(v) <= 9 for v in raw):
        raise DomainError("The selection is not valid; reload the page and select again.")
    return list(dict.fromkeys(int(v) for v in raw))


@bp.post("/ship")
def ship():
    """Confirm shipment of the selected (or all matching) orders, in a job."""
    if not ShipForm().validate_on_submit():
        abort(400)
    back = url_for("orders.index", **OrderQuery.from_args(request.form).to_args())
    try:
        ids = _ship_ids(request.form)
    except DomainError as exc:
        flash(translate_error(exc), "error")
        return redirect(back, 303)
    if not ids:
        flash(_("Select at least one order to confirm its shipment."), "error")
        return redirect(back, 303)
    from jobs.queue import enqueue_job

    job = enqueue_job(SHIP_KIND, bulk_ship_job, ids, user_id=current_user.id, total=len(ids))
    target = url_for("background.progress", job_id=job.id)
    if is_htmx():  # htmx goes to the progress page itself
        return "", 204, {"HX-Redirect": target}
    return redirect(target, 303)
