"""Sign-in, sign-out and account forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in on this device")


class CsrfOnlyForm(FlaskForm):
    """For buttons that only POST (sign out, sign out everywhere)."""


class EndDeviceForm(FlaskForm):
    session_id = HiddenField(validators=[DataRequired(), Length(max=32)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[
        DataRequired("Enter your current password."), Length(max=200)])
    new = PasswordField("New password", validators=[
        DataRequired("Enter a new password."), Length(max=200)])
    confirm = PasswordField("New password again", validators=[
        DataRequired("Enter the new password a second time."),
        EqualTo("new", "The two new passwords are different.")])
