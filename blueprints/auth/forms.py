"""Sign-in, sign-out and account forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, SelectField
from wtforms.validators import DataRequired, EqualTo, Length


def required() -> DataRequired:
    """WTForms' own "This field is required." is not in our catalog: say it ourselves."""
    return DataRequired(_l("This field is required."))


def at_most(n: int) -> Length:
    return Length(max=n, message=_l("Enter at most %(max)d characters."))


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[required(), at_most(254)])
    password = PasswordField(_l("Password"), validators=[required(), at_most(200)])
    remember = BooleanField(_l("Keep me signed in on this device"))


class CsrfOnlyForm(FlaskForm):
    """For buttons that only POST (sign out, sign out everywhere)."""


class EndDeviceForm(FlaskForm):
    session_id = HiddenField(validators=[required(), at_most(32)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[
        DataRequired(_l("Enter your current password.")), at_most(200)])
    new = PasswordField(_l("New password"), validators=[
        DataRequired(_l("Enter a new password.")), at_most(200)])
    confirm = PasswordField(_l("New password again"), validators=[
        DataRequired(_l("Enter the new password a second time.")),
        EqualTo("new", _l("The two new passwords are different."))])


class LanguageForm(FlaskForm):
    """A staff member's own language ("" = the store's). Choices are set per request
    (the first names the store's current language); domain.accounts.set_locale
    decides what is accepted, so a forged value is refused there with a message."""

    locale = SelectField(_l("Language"), choices=[], validate_choice=False)
