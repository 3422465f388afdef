"""Products import (preview, then apply) and export, CSV and xlsx.

The uploaded file stays on the server between preview and apply (under
GENERATED_FOLDER/imports, a random name, tied to the uploader, deleted after
apply or after a day): the browser only carries its token, so what is applied
is exactly what was previewed. Import is owner-only (it can reprice and
restock the whole catalogue at once); export is open to every signed-in staff
member, like the products list.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from functools import wraps
from pathlib import Path

from flask import abort, current_app, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField

from blueprints.i18n import translate_error
from blueprints.products.routes import bp  # noqa: F401
from blueprints.rendering import render
from domain import catalog_io
from domain.actors import Actor
from domain.errors import DomainError

KEEP_SECONDS = 24 * 3600
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


class UploadForm(FlaskForm):
    file = FileField()


class ApplyForm(FlaskForm):
    token = HiddenField()


def owner_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_owner:
            abort(403)
        return view(*args, **kwargs)
    return wrapped


# ------------------------------------------------------------------ kept uploads


def _folder() -> Path:
    folder = Path(current_app.config["GENERATED_FOLDER"]) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sweep(folder: Path) -> None:
    """Uploads nobody applied are dropped after a day."""
    cutoff = time.time() - KEEP_SECONDS
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:
            pass


def _keep(data: bytes, filename: str) -> str:
    folder = _folder()
    _sweep(folder)
    token = secrets.token_urlsafe(24)
    (folder / f"{token}.bin").write_bytes(data)
    (folder / f"{token}.json").write_text(json.dumps(
        {"filename": filename, "user_id": current_user.id}))
    return token


def _kept(token: str) -> tuple[bytes, str] | None:
    if not token or not TOKEN_RE.match(token):
        return None
    folder = _folder()
    try:
        meta = json.loads((folder / f"{token}.json").read_text())
        data = (folder / f"{token}.bin").read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("user_id") != current_user.id:
        return None  # another person's upload is not yours to apply
    return data, str(meta.get("filename", ""))


def _forget(token: str) -> None:
    for suffix in (".bin", ".json"):
        (_folder() / f"{token}{suffix}").unlink(missing_ok=True)


# ------------------------------------------------------------------ views


def _upload_page(form: UploadForm, error: str | None = None, status: int = 200):
    return render("products/import.html", form=form, error=error, preview=None,
                  labels=catalog_io.FIELD_LABELS, header_name=catalog_io.header_name), status


@bp.get("/import")
@owner_required
def import_form():
    return _upload_page(UploadForm())


@bp.post("/import/preview")
@owner_required
def import_preview():
    form = UploadForm()
    if not form.validate_on_submit():
        return _upload_page(form, _("The form expired; upload the file again."), 400)
    upload = form.file.data
    if not upload or not getattr(upload, "filename", ""):
        return _upload_page(form, _("Choose a CSV or Excel file to upload."), 422)
    data = upload.read(catalog_io.MAX_BYTES + 1)
    filename = Path(upload.filename.replace("\\", "/")).name[:200]
    try:
        parsed = catalog_io.parse(data, filename)
        result = catalog_io.preview(parsed)
    except DomainError as exc:
        return _upload_page(form, translate_error(exc), 422)
    token = _keep(data, filename) if result.has_changes and not result.has_errors else ""
    return render("products/import.html", form=form, error=None, preview=result,
                  filename=filename, apply_form=ApplyForm(token=token), token=token,
                  labels=catalog_io.FIELD_LABELS,
                  header_name=catalog_io.header_name)


@bp.post("/import/apply")
@owner_required
def import_apply():
    form = ApplyForm()
    if not form.validate_on_submit():
        abort(400)
    token = form.token.data or ""
    kept = _kept(token)
    if kept is None:
        flash(_("That upload has expired or was already applied; upload the file again."),
              "error")
        return redirect(url_for("products.import_form"))
    data, filename = kept
    try:
        result = catalog_io.apply(catalog_io.parse(data, filename), Actor.staff(current_user))
    except DomainError as exc:
        flash(translate_error(exc), "error")
        return redirect(url_for("products.import_form"))
    _forget(token)
    counts = result.counts
    flash(_("Import done: %(created)s, %(added)s, %(updated)s, %(unchanged)s.",
            created=ngettext("%(num)s product created", "%(num)s products created",
                             counts[catalog_io.CREATE]),
            added=ngettext("%(num)s variant added", "%(num)s variants added",
                           counts[catalog_io.CREATE] + counts[catalog_io.ADD]),
            updated=ngettext("%(num)s updated", "%(num)s updated", counts[catalog_io.UPDATE]),
            unchanged=ngettext("%(num)s unchanged", "%(num)s unchanged",
                               counts[catalog_io.UNCHANGED])), "success")
    return redirect(url_for("products.index"))


def _download(data: bytes, ext: str, mimetype: str):
    response = current_app.response_class(data, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{catalog_io.export_filename(ext)}"')
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/export.csv")
def export_csv():
    return _download(catalog_io.export_csv(), "csv", "text/csv; charset=utf-8")


@bp.get("/export.xlsx")
def export_xlsx():
    return _download(catalog_io.export_xlsx(), "xlsx",
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
