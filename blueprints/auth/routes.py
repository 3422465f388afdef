"""Sign in and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from blueprints.rendering import render
from domain.accounts import LoginThrottled, authenticate

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in on this device")


class LogoutForm(FlaskForm):
    """CSRF-only form: signing out is a POST."""


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
            user = authenticate(form.email.data, form.password.data,
                                ip=request.remote_addr or "")
        except LoginThrottled as exc:
            user, error, status = None, str(exc), 429
        else:
            if user is None:
                error, status = "Wrong email or password.", 401
        if user is not None:
            login_user(user, remember=form.remember.data)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        error, status = "Enter your email and password.", 400
    return render("auth/login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout():
    """Sign out and return to the sign-in page."""
    if LogoutForm().validate_on_submit():
        logout_user()
        flash("You are signed out.", "success")
    return redirect(url_for("auth.login"))
