"""Settings → WhatsApp → Billing: the monthly statement and its .xlsx (owner only)."""

from __future__ import annotations

from datetime import date
from functools import wraps

from babel.dates import format_skeleton
from flask import abort, make_response, request
from flask_babel import get_locale, gettext
from flask_login import current_user, login_required

from blueprints.i18n import translate_error
from blueprints.rendering import render
from blueprints.whatsapp.routes import bp
from domain.errors import ValidationError
from domain.notify import billing

PER_PAGE = 100
MAX_PAGE = 100_000


def owner_view(view):
    """Owner only, whatever the blueprint's own guard does (anonymous: sign in; staff: 403)."""

    @wraps(view)
    @login_required
    def guarded(*args, **kwargs):
        if not current_user.is_owner:
            abort(403)
        return view(*args, **kwargs)
    return guarded


def _page_number(value: str | None) -> int:
    """?page= as a number from 1; anything else is page 1 (a pager link, not a form)."""
    raw = (value or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        return 1
    return max(1, min(int(raw), MAX_PAGE))


def _month_from_request() -> tuple[int, int, str]:
    """(year, month, error): a refused ?month= shows the current month with the reason."""
    try:
        year, month = billing.parse_month(request.args.get("month"))
        return year, month, ""
    except ValidationError as exc:
        year, month = billing.local_month()
        return year, month, translate_error(exc)


@bp.get("/billing")
@owner_view
def billing_page():
    """The month's statement: per type, the total, and each message with its result."""
    year, month, error = _month_from_request()
    bill = billing.statement(year, month)
    pages = max(1, -(-bill.total_count // PER_PAGE))
    page = min(_page_number(request.args.get("page")), pages)
    messages = billing.statement_messages(year, month, PER_PAGE, (page - 1) * PER_PAGE)
    current = billing.local_month()
    prev_month = billing.shift_month(year, month, -1)
    next_month = billing.shift_month(year, month, 1)
    body = render(
        "whatsapp/billing.html", block="statement", section="whatsapp", bill=bill,
        messages=messages, page=page, pages=pages, error=error,
        month_title=format_skeleton("yMMMM", date(year, month, 1), locale=get_locale()),
        prev_key=f"{prev_month[0]}-{prev_month[1]:02d}" if prev_month[0] >= billing.FIRST_YEAR
        else None,
        next_key=f"{next_month[0]}-{next_month[1]:02d}" if next_month <= current else None,
        current_key=f"{current[0]}-{current[1]:02d}")
    return body, 400 if error else 200


@bp.get("/billing.xlsx")
@owner_view
def billing_xlsx():
    """The month's statement as a workbook, headers in the reader's language."""
    try:
        year, month = billing.parse_month(request.args.get("month"))
    except ValidationError as exc:
        return translate_error(exc), 400, {"Content-Type": "text/plain; charset=utf-8"}
    data = billing.statement_xlsx(year, month, translate=gettext)
    response = make_response(data)
    response.headers["Content-Type"] = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{billing.statement_filename(year, month)}"')
    response.headers["Cache-Control"] = "private, no-store"
    return response
