"""Settings → WhatsApp: credentials (stored encrypted, never shown again), the sandbox,
a test message, the status line, per-type switches, the templates to register, the
monthly cap and the price. Owner only."""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import BuildError

from blueprints.auth.forms import CsrfOnlyForm
from blueprints.i18n import translate_error
from blueprints.rendering import is_htmx, render
from blueprints.whatsapp.forms import (
    CapForm,
    CredentialsForm,
    PriceForm,
    TestMessageForm,
    TypeSwitchForm,
)
from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError
from domain.models import WhatsAppConfig, WhatsAppPrice, utcnow
from domain.notify import billing as wa_billing
from domain.notify import whatsapp, whatsapp_config
from domain.phones import store_e164

_PLACEHOLDER = re.compile(r"(\{\{\w+\}\})")
bp = Blueprint("whatsapp", __name__, url_prefix="/settings/whatsapp")

# Meta calls these without a session (and without a CSRF token): they prove who they
# are with the verify token and the body's signature instead (webhooks.py).
PUBLIC_ENDPOINTS = frozenset({"whatsapp.webhook"})


@bp.before_request
def require_owner():
    """Settings are the owner's (staff 403, signed-out visitors the sign-in page);
    the webhook is public."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    return _owner_check()


@login_required
def _owner_check():
    if not current_user.is_owner:
        abort(403)
    return None


# ------------------------------------------------------------ template helpers


@bp.app_template_filter("wa_placeholders")
def wa_placeholders(text: str) -> Markup:
    """A template's approved text with each {{parameter}} set as code (typed as is in Meta)."""
    parts = _PLACEHOLDER.split(text or "")
    return Markup("").join(Markup("<code>{}</code>").format(part) if _PLACEHOLDER.fullmatch(part)
                           else escape(part) for part in parts)


@bp.app_template_global("whatsapp_sandbox_on")
def whatsapp_sandbox_on() -> bool:
    """Whether the desk should wear the SANDBOX label (base.html): once per request,
    signed-in staff only."""
    if "whatsapp_sandbox_on" not in g:
        g.whatsapp_sandbox_on = False
        if current_user.is_authenticated:
            try:
                # A plain read of one column: a label on every desk page must never write
                # the row, nor load the whole configuration for one flag.
                g.whatsapp_sandbox_on = bool(db.session.scalar(
                    select(WhatsAppConfig.sandbox).where(WhatsAppConfig.id == 1)))
            except SQLAlchemyError:  # a label must not take the page down
                db.session.rollback()
    return g.whatsapp_sandbox_on


@bp.app_template_global("whatsapp_link")
def whatsapp_link(order) -> str:
    """The free, hand-sent wa.me link for the order page; "" without a mobile number."""
    if not order.customer_phone or whatsapp.recipient_for(order) is None:
        return ""
    return whatsapp.wa_me_link(order) or ""


@bp.app_template_global("whatsapp_type_label")
def whatsapp_type_label(code: str) -> str:
    """A WhatsApp message type as staff read it (the order timeline)."""
    kind = whatsapp.TYPES.get(code)
    return _(kind.label) if kind else code


# ------------------------------------------------------------ the page


def error_words(exc: whatsapp.WhatsAppError) -> str:
    """The API's refusal in words, as it said it ("(#131026) Message undeliverable: ...")."""
    return exc.describe() or _("Unknown error")


def _check_connection() -> None:
    """Ask the API who we are and keep the answer as the status line."""
    try:
        number = whatsapp.client_from_config().check()
    except whatsapp.WhatsAppError as exc:
        whatsapp_config.record_status(False, error_words(exc))
    else:
        whatsapp_config.record_status(True, number)


def _price_context() -> dict:
    """Today's price, the day it started (in the store's time zone), and prices to come."""
    now = utcnow()
    cents, currency = wa_billing.price_at(now)
    since = db.session.scalar(
        select(WhatsAppPrice.effective_from).where(WhatsAppPrice.effective_from <= now)
        .order_by(WhatsAppPrice.effective_from.desc(), WhatsAppPrice.id.desc()).limit(1))
    return {"price_cents": cents, "price_currency": currency, "price_since": since,
            "upcoming_prices": wa_billing.upcoming_prices(now)}


def _billing_url() -> str:
    for endpoint in ("whatsapp.billing", "whatsapp.billing_page"):
        try:
            return url_for(endpoint)
        except BuildError:  # the statement page's endpoint has either name
            continue
    return ""


def _page(*, forms: dict | None = None, block: str | None = None, notice: str = "",
          error: str = "", test_result: str = "", test_error: str = "", status: int = 200):
    """The page, or for htmx the one section a form swaps (``block``)."""
    config = whatsapp_config.view()
    forms = forms or {}
    disabled = set(config.disabled_types)
    context = dict(
        section="whatsapp", config=config, types=list(whatsapp.TYPES.values()),
        disabled_types=disabled, notice=notice, error=error,
        test_result=test_result, test_error=test_error,
        sandbox_server=bool(current_app.config.get("WHATSAPP_SANDBOX_SERVER")),
        webhook_url=current_app.config["PUBLIC_URL"].rstrip("/") + url_for("whatsapp.webhook"),
        has_token=config.has_access_token, has_secret=config.has_app_secret,
        billing_url=_billing_url(),
        credentials_form=forms.get("credentials") or CredentialsForm(
            formdata=None, phone_number_id=config.phone_number_id,
            business_account_id=config.business_account_id),
        test_form=forms.get("test") or TestMessageForm(formdata=None),
        cap_form=forms.get("cap") or CapForm(formdata=None, cap=config.monthly_cap_text),
        price_form=forms.get("price") or PriceForm(formdata=None),
        switch_form=TypeSwitchForm(formdata=None), action_form=CsrfOnlyForm(formdata=None),
        **_price_context())
    return render("whatsapp/settings.html", block=block or "settings", **context), status


def _done(block: str, message: str, *, error: bool = False):
    """After an action: htmx gets its section again with the message, others a redirect."""
    if is_htmx():
        return _page(block=block, notice="" if error else message, error=message if error else "",
                     status=422 if error else 200)
    flash(message, "error" if error else "success")
    return redirect(url_for("whatsapp.settings"))


def _refused(form) -> bool:
    """A form that failed validation; a missing CSRF token is a 400, as everywhere."""
    if form.validate_on_submit():
        return False
    if "csrf_token" in form.errors:
        abort(400)
    return True


@bp.get("")
def settings():
    """Status, activation, credentials, sandbox, test message, types, cap and price."""
    return _page()


@bp.post("/credentials")
def save_credentials():
    """Save the Cloud API credentials; an empty token or secret keeps the saved one."""
    form = CredentialsForm()
    if _refused(form):
        return _page(forms={"credentials": form}, block="connection", status=422)
    try:
        whatsapp_config.save_credentials(
            phone_number_id=form.phone_number_id.data.strip(),
            business_account_id=form.business_account_id.data.strip(),
            access_token=(form.access_token.data or "").strip() or None,
            app_secret=(form.app_secret.data or "").strip() or None)
    except DomainError as exc:
        _attach(form, exc, "phone_number_id")
        return _page(forms={"credentials": form}, block="connection", status=422)
    _check_connection()
    return _done("connection", _("WhatsApp credentials saved."))


def _attach(form, exc: DomainError, default: str) -> None:
    """A domain refusal next to the input it names (``exc.input_name``), else ``default``."""
    name = getattr(exc, "input_name", None)
    field = getattr(form, name, None) if isinstance(name, str) and name in form else None
    field = field or getattr(form, default)
    field.errors = [*field.errors, translate_error(exc)]


@bp.post("/activate")
def activate():
    """Turn the channel on: orders start writing WhatsApp messages."""
    if _refused(CsrfOnlyForm()):
        abort(400)
    try:
        whatsapp_config.activate()
    except DomainError as exc:
        return _done("connection", translate_error(exc), error=True)
    _check_connection()
    return _done("connection", _("WhatsApp is on."))


@bp.post("/deactivate")
def deactivate():
    """Turn the channel off: no new message is sent from now on."""
    if _refused(CsrfOnlyForm()):
        abort(400)
    whatsapp_config.deactivate()
    return _done("connection", _("WhatsApp is off. No more messages are sent."))


@bp.post("/sandbox")
def use_sandbox():
    """Fill in the sandbox's credentials: the fake Cloud API served by this app."""
    if not current_app.config.get("WHATSAPP_SANDBOX_SERVER"):
        abort(404)
    if _refused(CsrfOnlyForm()):
        abort(400)
    whatsapp_config.use_sandbox()
    _check_connection()
    return _done("connection", _("Sandbox credentials filled in. Messages go to the sandbox, not to customers."))


@bp.post("/test")
def send_test():
    """Send the API's test message to a number, and keep the outcome as the status line."""
    form = TestMessageForm()
    if _refused(form):
        return _page(forms={"test": form}, block="connection", status=422)
    to = store_e164(form.phone.data)
    if not to:
        form.phone.errors = [_("Enter a mobile number, e.g. 9123 4567 or +852 9123 4567.")]
        return _page(forms={"test": form}, block="connection", status=422)
    try:
        wamid = whatsapp.client_from_config().send_test(to)
    except whatsapp.WhatsAppError as exc:
        words = error_words(exc)
        whatsapp_config.record_status(False, words)
        return _test_outcome(form, error=words)
    _check_connection()
    return _test_outcome(form, result=_("Test message sent to %(number)s (message id %(id)s).",
                                        number=to, id=wamid))


def _test_outcome(form, *, result: str = "", error: str = ""):
    if is_htmx():
        return _page(forms={"test": form}, block="connection", test_result=result,
                     test_error=error, status=422 if error else 200)
    flash(error or result, "error" if error else "success")
    return redirect(url_for("whatsapp.settings"))


@bp.post("/types/<code>")
def switch_type(code: str):
    """Turn one message type on or off."""
    if code not in whatsapp.TYPES:
        abort(404)
    form = TypeSwitchForm()
    if _refused(form):
        abort(400)
    whatsapp_config.set_type_enabled(code, bool(form.enabled.data))
    label = _(whatsapp.TYPES[code].label)
    return _done("types", _("“%(type)s” messages are on.", type=label) if form.enabled.data
                 else _("“%(type)s” messages are off.", type=label))


@bp.post("/cap")
def save_cap():
    """The monthly cap in HKD (empty: no cap)."""
    form = CapForm()
    if _refused(form):
        return _page(forms={"cap": form}, block="costs", status=422)
    try:
        whatsapp_config.set_monthly_cap((form.cap.data or "").strip() or None)
    except DomainError as exc:
        _attach(form, exc, "cap")
        return _page(forms={"cap": form}, block="costs", status=422)
    return _done("costs", _("Monthly cap saved."))


@bp.post("/price")
def save_price():
    """A new price per message from a date on (past messages keep theirs)."""
    form = PriceForm()
    if _refused(form):
        return _page(forms={"price": form}, block="costs", status=422)
    try:
        wa_billing.set_price(form.price.data.strip(), form.effective_from.data.strip(),
                          Actor.staff(current_user))
    except DomainError as exc:
        # A refusal about the amount names the price field; the others are about the date.
        about_price = wa_billing.PRICE_FIELD in exc.params.values()
        _attach(form, exc, "price" if about_price else "effective_from")
        return _page(forms={"price": form}, block="costs", status=422)
    return _done("costs", _("New price saved."))


# The statement and the webhooks register on the same blueprint (the webhooks route is
# public and exempt from the owner check: see webhooks.py).
from blueprints.whatsapp import billing, webhooks  # noqa: E402,F401
