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


QUANTITY_RANGE = "Give a quantity from 1 to %(max)d." % {"max": MAX_QUANTITY}  # noqa: UP031


class QuantityField(IntegerField):
    """A whole number; anything else gets a sentence, not WTForms' own message."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError("Give the quantity as a whole number, like 2.") from exc


class LineForm(Form):
    """One item line (a sub-form: the outer form carries CSRF).

    A line with neither item nor quantity is an empty slot and is skipped. A
    line with only one of them is refused: a blank quantity is not taken as 1,
    and a quantity without an item is not silently dropped."""

    variant_id = SelectField("Item", coerce=int, validate_choice=False, default=0)
    quantity = QuantityField("Qty", validators=[Optional(), NumberRange(1, MAX_QUANTITY, QUANTITY_RANGE)])

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if self.variant_id.errors:  # a crafted, non-numeric item id
            self.variant_id.errors = ["Choose an item from the list."]
        typed = bool(self.quantity.raw_data and str(self.quantity.raw_data[0]).strip())
        if self.variant_id.data and not typed:
            self.quantity.errors.append("Give a quantity for this item.")
            valid = False
        elif not self.variant_id.data and typed and not self.variant_id.errors \
                and not self.quantity.errors:
            self.variant_id.errors.append("Choose the item for this quantity.")
            valid = False
        return valid

    @property
    def error_messages(self) -> list[str]:
        """This line's errors as sentences, item first (shown next to the line)."""
        return [*self.variant_id.errors, *self.quantity.errors]


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
