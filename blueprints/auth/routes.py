"""Sign in and out; each person's account page (signed-in devices, password)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_babel import refresh as refresh_locale
from flask_login import current_user, login_required, logout_user

from blueprints.auth.forms import (
    CsrfOnlyForm,
    EndDeviceForm,
    LanguageForm,
    LoginForm,
    PasswordChangeForm,
)
from blueprints.auth.web_sessions import client_address, current_record, forget_this_device, sign_in
from blueprints.i18n import store_locale, translate_error
from blueprints.orders.forms import first_error
from blueprints.rendering import is_htmx, render
from domain import accounts, sessions
from domain.accounts import LoginThrottled, authenticate
from domain.errors import DomainError
from domain.i18n import LOCALE_NAMES

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a signed-in user off to another host."""
    if not target:
        return url_for("orders.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("orders.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign-in form; throttled after repeated failures."""
    if current_user.is_authenticated:
        return redirect(url_for("orders.index"))
    form = LoginForm()
    error = ""
    status = 200
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data, form.password.data, ip=client_address())
        except LoginThrottled as exc:
            user, error, status = None, translate_error(exc), 429
        else:
            if user is None:
                error, status = _("Wrong email or password."), 401
        if user is not None:
            previous = current_record()
            if previous is not None:
                # This browser's earlier session (e.g. dropped by Flask-Login's address
                # check) would otherwise linger in the devices list until it expires.
                sessions.end_session(previous.id)
            started = sessions.start_session(
                user.id, user_agent=request.headers.get("User-Agent", ""),
                address=client_address(), remember=bool(form.remember.data))
            sign_in(user, started)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        error, status = _("Enter your email and password."), 400
    return render("auth/login.html", form=form, error=error), status


def _sign_out_here(message: str):
    """This device's record is gone (or going): clear the cookies, show the login page."""
    forget_this_device()
    logout_user()
    flash(message, "success")
    return redirect(url_for("auth.login"))


@bp.post("/logout")
@login_required
def logout():
    """Sign out: the session ends on the server, so a copy of the cookie stops working."""
    if not CsrfOnlyForm().validate_on_submit():
        return redirect(url_for("auth.login"))
    record = current_record()
    if record is not None:
        sessions.end_session(record.id)
    return _sign_out_here(_("You are signed out."))


# ------------------------------------------------------------------ account


def _this_device_id() -> str:
    record = current_record()
    return record.id if record is not None else ""


@bp.get("/account")
@login_required
def account():
    """Your language, your signed-in devices and your password."""
    return _account_page(PasswordChangeForm())


def _language_form(data: str | None = None) -> LanguageForm:
    """The staff member's language choices; the first is "the store's", named."""
    form = LanguageForm(formdata=None, locale=current_user.locale or "") if data is None \
        else LanguageForm()
    store_name = LOCALE_NAMES.get(store_locale(), store_locale())
    form.locale.choices = [("", _("Store default (%(language)s)", language=store_name))] + [
        (code, name) for code, name in LOCALE_NAMES.items()]
    return form


def _account_page(password_form, error: str = "", status: int = 200, *,
                  language_form=None, language_error: str = ""):
    devices = sessions.live_sessions(current_user.id)
    return render("auth/account.html", devices=devices, this_device=_this_device_id(),
                  password_form=password_form, device_form=EndDeviceForm(),
                  button_form=CsrfOnlyForm(), error=error,
                  language_form=language_form or _language_form(),
                  language_error=language_error), status


@bp.post("/account/language")
@login_required
def set_language():
    """The staff member's own language; the page answers in the new language."""
    form = _language_form(data="post")
    if not form.validate_on_submit():
        return _account_page(PasswordChangeForm(formdata=None), status=400, language_form=form,
                             language_error=first_error(form))
    try:
        accounts.set_locale(current_user.id, form.locale.data)
    except DomainError as exc:
        return _account_page(PasswordChangeForm(formdata=None), status=422,
                             language_form=_language_form(), language_error=translate_error(exc))
    # current_user is the row just changed; the locale was picked earlier in this request.
    refresh_locale()
    flash(_("Language saved."), "success")
    return reload_page(url_for("auth.account"))


def reload_page(url: str):
    """After a language change the whole page must be drawn again (the top bar too):
    a redirect, or for htmx an HX-Redirect (a swapped fragment would keep the old bar)."""
    if is_htmx():
        return "", 204, {"HX-Redirect": url}
    return redirect(url)


@bp.post("/account/devices/sign-out")
@login_required
def end_device():
    """Sign one of your devices out (this one included)."""
    form = EndDeviceForm()
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(url_for("auth.account"))
    target = form.session_id.data
    if target == _this_device_id():
        sessions.end_session(target, user_id=current_user.id)
        return _sign_out_here(_("You are signed out on this device."))
    if sessions.end_session(target, user_id=current_user.id):
        flash(_("That device is signed out."), "success")
    else:
        flash(_("That device was already signed out."), "error")
    return redirect(url_for("auth.account"))


@bp.post("/account/devices/sign-out-others")
@login_required
def end_other_devices():
    """Sign out everywhere else; this device stays signed in."""
    if not CsrfOnlyForm().validate_on_submit():
        flash(_("This form has expired. Reload the page and try again."), "error")
        return redirect(url_for("auth.account"))
    count = sessions.end_all_sessions(current_user.id, keep=_this_device_id() or None)
    flash(ngettext("Signed out on %(num)d other device.", "Signed out on %(num)d other devices.",
                   count), "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/devices/sign-out-all")
@login_required
def end_all_devices():
    """Sign out everywhere, this device included."""
    if not CsrfOnlyForm().validate_on_submit():
        flash(_("This form has expired. Reload the page and try again."), "error")
        return redirect(url_for("auth.account"))
    sessions.end_all_sessions(current_user.id)
    return _sign_out_here(_("You are signed out on every device."))


# Which password input a refusal of domain.accounts.change_password is about.
PASSWORD_INPUTS = {"The current password is wrong.": "current"}


@bp.post("/account/password")
@login_required
def change_password():
    """A new password (the current one required); every other device is signed out."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return _account_page(form, first_error(form), 422)
    try:
        accounts.change_password(current_user.id, form.current.data, form.new.data,
                                 ip=client_address(), keep_session=_this_device_id() or None)
    except LoginThrottled as exc:
        form.current.errors = [translate_error(exc)]
        return _account_page(form, translate_error(exc), 429)
    except DomainError as exc:
        from blueprints.settings.forms import attach_refusal

        # the refusal beside the password it is about (passwords are never sent back)
        attach_refusal(form, exc, PASSWORD_INPUTS, "new")
        return _account_page(form, translate_error(exc), 422)
    flash(_("Password changed. Every other device is signed out."), "success")
    return redirect(url_for("auth.account"))
