"""Owner-only settings forms. Domain functions do the real validation."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from domain.accounts import ROLES
from domain.store import PLANS, SHIPPING_KINDS


class StoreForm(FlaskForm):
    name = StringField("Store name", validators=[DataRequired(), Length(max=120)])
    address = TextAreaField("Address", validators=[Length(max=500)])
    phone = StringField("Phone", validators=[Length(max=40)])
    email = StringField("Store email", validators=[Length(max=254)])
    notification_email = StringField("Notification email (new orders)",
                                     validators=[Length(max=254)])
    currency = StringField("Currency", validators=[DataRequired(), Length(min=3, max=3)])
    timezone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])
    plan = SelectField("Plan", choices=list(PLANS.items()))
    order_prefix = StringField("Order number prefix", validators=[Length(max=6)])
    payment_deadline_days = StringField("Payment deadline (days, empty = none)",
                                        validators=[Optional(), Length(max=3)])
    reminder_lead_hours = StringField("Payment reminder before deadline (hours, empty = none)",
                                      validators=[Optional(), Length(max=4)])


class ToggleForm(FlaskForm):
    enabled = BooleanField("Enabled")


class PaymentMethodForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    instructions = TextAreaField("Payment instructions shown to the customer",
                                 validators=[DataRequired(), Length(max=2000)])
    deadline_days = StringField("Deadline override (days)", validators=[Optional(), Length(max=3)])


class ShippingMethodForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=80)])
    kind = SelectField("Kind", choices=list(SHIPPING_KINDS.items()))
    fee = StringField("Fee", validators=[Length(max=16)])
    enabled = BooleanField("Enabled", default=True)


class StaffForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    name = StringField("Name", validators=[Length(max=120)])
    password = PasswordField("Initial password", validators=[DataRequired(), Length(max=200)])
    role = SelectField("Role", choices=list(ROLES.items()), default="staff")


class StaffUpdateForm(FlaskForm):
    role = SelectField("Role", choices=list(ROLES.items()))
    active = BooleanField("Can sign in")


class LogoForm(FlaskForm):
    logo = FileField("Logo (PNG or JPEG, up to 2 MB)", validators=[FileRequired("Choose an image.")])
