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
    # Printed at the foot of every invoice (domain.store.INVOICE_NOTE_MAX).
    invoice_note = TextAreaField(_l("Invoice note"), validators=[at_most(1000)])


class ToggleForm(FlaskForm):
    enabled = BooleanField(_l("Enabled"))


class PaymentMethodForm(FlaskForm):
    name = StringField(_l("Method name"), validators=[required(), at_most(80)])
    instructions = TextAreaField(_l("Payment instructions shown to the customer"),
                                 validators=[required(), at_most(2000)])
    deadline_days = StringField(_l("Deadline override (days)"), validators=[Optional(), at_most(3)])


class PaymentDetailsForm(FlaskForm):
    """A built-in manual method's typed details (domain/payment_details.py checks
    them); the subclasses add the method's own fields."""

    instructions = TextAreaField(_l("Extra note for the customer (optional)"),
                                 validators=[at_most(2000)])
    deadline_days = StringField(_l("Deadline override (days, empty = store default)"),
                                validators=[Optional(), at_most(3)])


class FpsDetailsForm(PaymentDetailsForm):
    fps_id = StringField(_l("FPS ID, phone number or email"), validators=[at_most(120)])
    payee_name = StringField(_l("Account name"), validators=[at_most(120)])


class BankDetailsForm(PaymentDetailsForm):
    bank_name = StringField(_l("Bank name"), validators=[at_most(120)])
    payee_name = StringField(_l("Account name"), validators=[at_most(120)])
    account_number = StringField(_l("Account number"), validators=[at_most(40)])


class PaymeDetailsForm(PaymentDetailsForm):
    payme_link = StringField(_l("PayMe link"), validators=[at_most(300)])


DETAILS_FORMS = {"fps": FpsDetailsForm, "bank_transfer": BankDetailsForm,
                 "payme": PaymeDetailsForm}


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


# Which input a domain refusal belongs beside: the label it names as %(field)s
# (domain/store.py, domain/accounts.py), or, for a refusal without one, its message id.
STORE_INPUTS = {
    "Store name": "name", "Address": "address", "Phone": "phone", "Store email": "email",
    "Notification email": "notification_email", "Payment deadline": "payment_deadline_days",
    "Reminder lead time": "reminder_lead_hours", "Invoice note": "invoice_note",
    "Choose one of the languages offered.": "language", "Unknown plan.": "plan",
    "Currency must be a three-letter code such as HKD.": "currency",
    "Time zone is not a known IANA zone such as Asia/Hong_Kong.": "timezone",
    "Order prefix must be up to 6 letters A–Z.": "order_prefix",
}
METHOD_INPUTS = {
    "Method name": "name", "Payment instructions": "instructions",
    "Payment deadline": "deadline_days", "Fee": "fee",
    "A payment method called %(name)s already exists.": "name",
    "Online methods have no payment instructions.": "instructions",
    "Kind must be delivery, pickup or logistics automation.": "kind",
}
STAFF_INPUTS = {
    "Email": "email", "Name": "name", "Role must be owner or staff.": "role",
    "A user with email %(email)s already exists.": "email",
    "Password must be at least %(min)s characters.": "password",
    "Password must be at most 200 characters.": "password",
}


def attach_refusal(form, exc, inputs: dict[str, str], default: str) -> None:
    """Put a domain refusal among the errors of the input it is about (else ``default``),
    so the page shows it beside that input."""
    from blueprints.i18n import translate_error

    label = exc.params.get("field") if isinstance(getattr(exc, "params", None), dict) else None
    name = inputs.get(str(label)) if label else None
    name = name or inputs.get(getattr(exc, "msgid", "")) or default
    field = form[name] if name in form else form[default]
    field.errors = [*field.errors, translate_error(exc)]
