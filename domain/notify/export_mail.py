"""The "export ready" email (issue 9, SPEC §7 "Export to email").

A background export mailed to the staff member who asked for it, rendered at
send time in their language. A file up to ``ATTACH_LIMIT_BYTES`` travels as
an attachment; a bigger one is not attached (mail servers refuse or bounce
large messages) and the email links to its download in the desk instead,
which works for ``DOWNLOAD_KEPT`` after the export finished.

The download rule (how long a finished export's file is kept) lives here too:
the desk's download view and the sweep that deletes old files read it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from babel.units import format_unit
from flask import current_app
from flask_babel import force_locale, get_locale, gettext

from domain.db import db
from domain.i18n import DEFAULT_LOCALE, N_, clean_locale
from domain.models import Job, OutboxMessage, User, utcnow
from domain.notify.transport import RenderedEmail
from domain.store import get_settings

KIND = "export_ready"
# Above this the file is linked, not attached. Base64 makes a 10 MB file a
# ~14 MB message, still under the 20-25 MB most mail servers accept.
ATTACH_LIMIT_BYTES = 10 * 1024 * 1024
ATTACH_LIMIT_CONFIG = "EXPORT_MAIL_ATTACH_LIMIT"  # tests lower it
DOWNLOAD_KEPT = timedelta(days=7)
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
SUBJECT = N_("Your order export is ready — %(store)s")


class ExportFileGone(LookupError):
    """The message's export has no file any more (job deleted, file removed).
    Raised at render time: delivery records it as the message's error."""


# ------------------------------------------------------------------ the download rule


def download_expires_at(job: Job) -> datetime | None:
    """When the job's download stops working (naive UTC), or None while unfinished."""
    return job.finished_at + DOWNLOAD_KEPT if job.finished_at else None


def download_expired(job: Job, now: datetime | None = None) -> bool:
    expires = download_expires_at(job)
    return expires is not None and (now or utcnow()) >= expires


def staff_locale(user: User | None) -> str:
    """The staff member's language: their profile's, else the store's."""
    return (clean_locale(getattr(user, "locale", None))
            or clean_locale(getattr(get_settings(), "language", None), DEFAULT_LOCALE))


def attach_limit() -> int:
    return int(current_app.config.get(ATTACH_LIMIT_CONFIG) or ATTACH_LIMIT_BYTES)


# ------------------------------------------------------------------ the email


def _export_file(message: OutboxMessage) -> tuple[Job, Path]:
    job_id = (message.params or {}).get("job_id")
    job = db.session.get(Job, str(job_id)) if job_id else None
    if job is None or not job.result_path:
        raise ExportFileGone(f"Export job {job_id} has no file to send")
    path = Path(job.result_path)
    if not path.is_file():
        raise ExportFileGone(f"The file of export job {job.id} is gone: {path.name}")
    return job, path


def file_size(size: int) -> str:
    """'6 kB', '12.4 MB' in the current locale (CLDR's unit patterns; 1 MB = 1024 kB,
    as the limit counts)."""
    locale = get_locale() or DEFAULT_LOCALE
    if size < 1024 * 1024:
        return format_unit(max(1, round(size / 1024)), "digital-kilobyte", length="short",
                           locale=locale)
    return format_unit(size / (1024 * 1024), "digital-megabyte", length="short",
                       format="#,##0.#", locale=locale)


def render_export_email(message: OutboxMessage) -> RenderedEmail:
    """The email for one ``export_ready`` outbox row (params: {"job_id": ...})."""
    from domain.notify.email import (
        logo_image,
        message_locale,
        pad,
        public_url,
        render_pair,
        text_facts,
        underline,
    )

    job, path = _export_file(message)
    user = db.session.get(User, message.user_id) if message.user_id else None
    size = path.stat().st_size
    limit = attach_limit()
    attached = size <= limit
    store = get_settings()
    logo = logo_image()
    filename = job.result_name or path.name
    # The job's finish time as the desk recorded it; a message rendered in the
    # moment between the export's commit and the worker's bookkeeping falls
    # back to the message's own time (written in the same transaction).
    finished = job.finished_at or message.created_at
    with force_locale(message_locale(message)):
        subject = gettext(SUBJECT, store=store.name)
        text, html = render_pair(
            "export_ready", subject=subject, store=store, logo=logo,
            lang=str(get_locale() or DEFAULT_LOCALE).replace("_", "-"),
            user=user, job=job, filename=filename, attached=attached,
            size_text=file_size(size), limit_text=file_size(limit),
            finished_at=finished, expires_at=finished + DOWNLOAD_KEPT,
            kept_days=DOWNLOAD_KEPT.days,
            # Links under PUBLIC_URL, the desk's public address: this usually runs
            # in a worker, with no request to take a host from.
            download_url=public_url("background.download", job_id=job.id),
            desk_url=public_url("orders.index"),
            pad=pad, underline=underline, text_facts=text_facts)
    attachments = [(filename, path.read_bytes(), *XLSX_TYPE)] if attached else []
    return RenderedEmail(subject=subject, text=text, html=html,
                         inline_images=[logo.part] if logo else [], attachments=attachments)
