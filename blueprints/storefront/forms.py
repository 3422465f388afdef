"""Customer-side forms. Every POST is a FlaskForm, so every one carries CSRF.

Labels and messages are lazy (translated when shown, in the reader's language);
WTForms fills in ``%(min)s`` / ``%(max)s`` of NumberRange and Length messages."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, IntegerField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from domain.orders import MAX_QUANTITY

TOO_LONG = _l("At most %(max)d characters.")


class AddToCartForm(FlaskForm):
    variant_id = HiddenField(validators=[DataRequired(_l("Choose an item."))])
    quantity = IntegerField(_l("Quantity"), default=1, validators=[
        InputRequired(_l("Give a quantity.")),
        NumberRange(1, MAX_QUANTITY, _l("Quantity must be between %(min)s and %(max)s."))])


class SetQuantityForm(FlaskForm):
    variant_id = HiddenField(validators=[DataRequired(_l("Choose an item."))])
    quantity = IntegerField(_l("Quantity"), validators=[
        InputRequired(_l("Give a quantity.")),
        NumberRange(0, MAX_QUANTITY, _l("Quantity must be between %(min)s and %(max)s."))])


class PaymentChoiceForm(FlaskForm):
    payment_method = RadioField(_l("Payment method"), coerce=int,
                                validators=[InputRequired(_l("Choose a payment method."))])
    card_number = StringField(_l("Card number (test gateway)"),
                              validators=[Optional(), Length(max=23, message=TOO_LONG)])


class CheckoutForm(PaymentChoiceForm):
    name = StringField(_l("Name"), validators=[DataRequired(_l("Give your name.")),
                                               Length(max=120, message=TOO_LONG)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40, message=TOO_LONG)])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=254, message=TOO_LONG)])
    address = TextAreaField(_l("Delivery address"),
                            validators=[Optional(), Length(max=500, message=TOO_LONG)])
    shipping_method = RadioField(_l("Shipping"), coerce=int,
                                 validators=[InputRequired(_l("Choose a shipping method."))])
    note = TextAreaField(_l("Note for the shop"),
                         validators=[Optional(), Length(max=500, message=TOO_LONG)])


class EmailLinkForm(FlaskForm):
    """CSRF only: "Email me this link" on the order page."""


class ProofForm(FlaskForm):
    proof = FileField(_l("Payment proof"), validators=[FileRequired(_l("Choose a file to upload."))])


def first_error(form: FlaskForm) -> str:
    """The form's first refusal as one sentence, led by its field's label."""
    for name, errors in form.errors.items():
        if errors:
            field = getattr(form, name, None)
            label = field.label.text if field is not None and name != "csrf_token" else ""
            if label:
                return _("%(field)s: %(error)s", field=label, error=errors[0])
            return str(errors[0])
    return _("The form is not valid.")
