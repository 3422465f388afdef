"""The draft builder form: customer, item lines, shipping and fee, discount."""

from flask_wtf import FlaskForm
from wtforms import (
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from domain.orders import MAX_QUANTITY

BLANK_LINES = 2


class LineForm(Form):
    """One item line (a sub-form: the outer form carries CSRF)."""

    variant_id = SelectField("Item", coerce=int, validate_choice=False, default=0)
    quantity = IntegerField("Qty", validators=[
        Optional(), NumberRange(1, MAX_QUANTITY, f"Quantities must be between 1 and {MAX_QUANTITY}.")])


class DraftForm(FlaskForm):
    customer_name = StringField("Customer name", validators=[
        DataRequired("Give the customer's name."), Length(max=120)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)])
    email = StringField("Email", validators=[Optional(), Length(max=254)])
    address = TextAreaField("Delivery address", validators=[Optional(), Length(max=500)])
    lines = FieldList(FormField(LineForm), min_entries=1, max_entries=100)
    shipping_method = SelectField("Shipping method", coerce=int,
                                  validators=[DataRequired("Choose a shipping method.")])
    shipping_fee = StringField("Shipping fee (blank: the method's fee)",
                               validators=[Optional(), Length(max=20)])
    discount = StringField("Discount", validators=[Optional(), Length(max=20)])


class DeleteForm(FlaskForm):
    """A bare button: only the CSRF token."""
