"""Export to email (SPEC §7): the export runs in the background and is mailed.

"Email me the file" in the orders list's bulk bar posts here with the same
fields as "Export selected" (the ticked ids, or scope=matching with the query),
so the selection means exactly what it means for the download. The job
(jobs/exports.export_and_email_job) writes the export-ready message to the
signed-in staff member's own address; the address never comes from the form.
"""

from __future__ import annotations

import logging

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from blueprints.i18n import translate_error
from blueprints.orders.forms import ConfirmForm
from blueprints.orders.routes import _selected_ids, bp
from blueprints.rendering import is_htmx
from domain.errors import DomainError
from domain.search import OrderQuery

log = logging.getLogger(__name__)


def _answer(message: str, back: str, *, error: bool = False):
    """htmx: the message in place in the bulk bar; else flash it on the list."""
    if is_htmx():
        # 422 still swaps (the page's htmx-config), so a refusal shows where the click was.
        html = render_template("background/_export_email_status.html", message=message,
                               error=error)
        return html, 422 if error else 200
    flash(message, "error" if error else "success")
    return redirect(back)


@bp.post("/orders/export/email")
def export_email():
    """Queue the export of the selected (or all matching) orders, mailed when ready."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    back = url_for("orders.index", **OrderQuery.from_args(request.form).to_args())
    try:
        ids = _selected_ids(request.form)
    except DomainError as exc:
        return _answer(translate_error(exc), back, error=True)
    if not ids:
        return _answer(_("No orders match; nothing to export."), back, error=True)
    from jobs.exports import export_and_email_job
    from jobs.queue import enqueue_job

    try:
        enqueue_job("export_email", export_and_email_job, order_ids=ids,
                    user_id=current_user.id, total=len(ids))
    except Exception:  # Redis down: the job row is marked failed by enqueue_job
        log.exception("Could not queue the export to email")
        return _answer(_("The export could not be started because the job queue is not "
                         "reachable. Try again in a minute."), back, error=True)
    return _answer(_("We'll email the file to %(address)s when it is ready.",
                     address=current_user.email), back)
