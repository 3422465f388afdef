"""Customer-side forms. Every POST is a FlaskForm, so every one carries CSRF."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, IntegerField, RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from domain.orders import MAX_QUANTITY


class AddToCartForm(FlaskForm):
    variant_id = HiddenField(validators=[DataRequired("Choose an item.")])
    quantity = IntegerField("Quantity", default=1, validators=[
        InputRequired("Give a quantity."),
        NumberRange(1, MAX_QUANTITY, f"Quantity must be between 1 and {MAX_QUANTITY}.")])


class SetQuantityForm(FlaskForm):
    variant_id = HiddenField(validators=[DataRequired("Choose an item.")])
    quantity = IntegerField("Quantity", validators=[
        InputRequired("Give a quantity."),
        NumberRange(0, MAX_QUANTITY, f"Quantity must be between 0 and {MAX_QUANTITY}.")])


class PaymentChoiceForm(FlaskForm):
    payment_method = RadioField("Payment method", coerce=int,
                                validators=[InputRequired("Choose a payment method.")])
    card_number = StringField("Card number (test gateway)",
                              validators=[Optional(), Length(max=23)])


class CheckoutForm(PaymentChoiceForm):
    name = StringField("Name", validators=[DataRequired("Give your name."), Length(max=120)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)])
    email = StringField("Email", validators=[Optional(), Length(max=254)])
    address = TextAreaField("Delivery address", validators=[Optional(), Length(max=500)])
    shipping_method = RadioField("Shipping", coerce=int,
                                 validators=[InputRequired("Choose a shipping method.")])


class ProofForm(FlaskForm):
    proof = FileField("Payment proof", validators=[FileRequired("Choose a file to upload.")])


def first_error(form: FlaskForm) -> str:
    for name, errors in form.errors.items():
        if errors:
            field = getattr(form, name, None)
            label = field.label.text if field is not None and name != "csrf_token" else ""
            return f"{label}: {errors[0]}" if label else errors[0]
    return "The form is not valid."
