"""Owner-only settings forms. Domain functions do the real validation."""

from flask_babel import lazy_gettext as _l
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
from wtforms.validators import Length, Optional

from blueprints.auth.forms import at_most, required
from domain.accounts import ROLES
from domain.i18n import LOCALE_NAMES
from domain.store import PLANS, SHIPPING_KINDS


class StoreForm(FlaskForm):
    name = StringField(_l("Store name"), validators=[required(), at_most(120)])
    address = TextAreaField(_l("Address"), validators=[at_most(500)])
    phone = StringField(_l("Phone"), validators=[at_most(40)])
    email = StringField(_l("Store email"), validators=[at_most(254)])
    notification_email = StringField(_l("Notification email (new orders)"),
                                     validators=[at_most(254)])
    currency = StringField(_l("Currency"), validators=[required(), Length(
        min=3, max=3, message=_l("Enter a three-letter code such as HKD."))])
    timezone = StringField(_l("Time zone"), validators=[required(), at_most(64)])
    plan = SelectField(_l("Plan"), choices=[(k, _l(v)) for k, v in PLANS.items()])
    order_prefix = StringField(_l("Order number prefix"), validators=[at_most(6)])
    payment_deadline_days = StringField(_l("Payment deadline (days, empty = none)"),
                                        validators=[Optional(), at_most(3)])
    reminder_lead_hours = StringField(_l("Payment reminder before deadline (hours, empty = none)"),
                                      validators=[Optional(), at_most(4)])
    # Choices from domain.i18n.LOCALE_NAMES, each in its own language.
    # The domain refuses anything else, in the reader's language (not WTForms' English).
    language = SelectField(_l("Language"), choices=list(LOCALE_NAMES.items()),
                           validate_choice=False)


class ToggleForm(FlaskForm):
    enabled = BooleanField(_l("Enabled"))


class PaymentMethodForm(FlaskForm):
    name = StringField(_l("Method name"), validators=[required(), at_most(80)])
    instructions = TextAreaField(_l("Payment instructions shown to the customer"),
                                 validators=[required(), at_most(2000)])
    deadline_days = StringField(_l("Deadline override (days)"), validators=[Optional(), at_most(3)])


class ShippingMethodForm(FlaskForm):
    name = StringField(_l("Method name"), validators=[required(), at_most(80)])
    kind = SelectField(_l("Kind"), choices=[(k, _l(v)) for k, v in SHIPPING_KINDS.items()])
    fee = StringField(_l("Fee"), validators=[at_most(16)])
    enabled = BooleanField(_l("Enabled"), default=True)


class StaffForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[required(), at_most(254)])
    name = StringField(_l("Name"), validators=[at_most(120)])
    password = PasswordField(_l("Initial password"), validators=[required(), at_most(200)])
    role = SelectField(_l("Role"), choices=[(k, _l(v)) for k, v in ROLES.items()], default="staff")


class StaffUpdateForm(FlaskForm):
    role = SelectField(_l("Role"), choices=[(k, _l(v)) for k, v in ROLES.items()])
    active = BooleanField(_l("Can sign in"))


class LogoForm(FlaskForm):
    logo = FileField(_l("Logo (PNG or JPEG, up to 2 MB)"), validators=[FileRequired(_l("Choose an image."))])
