"""The draft builder form: customer, item lines, shipping and fee, discount."""

from flask_babel import lazy_gettext as _l
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
from wtforms.widgets import HiddenInput

from domain.orders import MAX_QUANTITY

MAX_LINES = 100


# WTForms fills in %(min)s and %(max)s of a NumberRange message.
QUANTITY_RANGE = _l("Give a quantity from %(min)s to %(max)s.")
TOO_LONG = _l("At most %(max)d characters.")


class QuantityField(IntegerField):
    """A whole number; anything else gets a sentence, not WTForms' own message."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as exc:
            raise ValueError(_l("Give the quantity as a whole number, like 2.")) from exc


class VariantIdField(IntegerField):
    """The item of a line: a hidden id put there by the search's "Add". Blank is an
    empty slot (0); anything but a whole number is refused (a crafted post)."""

    widget = HiddenInput()

    def process_formdata(self, valuelist):
        if valuelist and not str(valuelist[0]).strip():
            self.data = 0
            return
        super().process_formdata(valuelist)
        if self.data is not None and not 0 <= self.data < 2**31:
            self.data = None
            raise ValueError("out of range")


class LineForm(Form):
    """One item line (a sub-form: the outer form carries CSRF).

    A line with neither item nor quantity is an empty slot and is skipped. A
    line with only one of them is refused: a blank quantity is not taken as 1,
    and a quantity without an item is not silently dropped."""

    variant_id = VariantIdField(_l("Item"), default=0)
    quantity = QuantityField(_l("Qty"), validators=[Optional(), NumberRange(1, MAX_QUANTITY, QUANTITY_RANGE)])

    def validate(self, extra_validators=None):
        valid = super().validate(extra_validators)
        if self.variant_id.errors:  # a crafted, non-numeric item id
            self.variant_id.errors = [_l("Choose an item from the list.")]
        typed = bool(self.quantity.raw_data and str(self.quantity.raw_data[0]).strip())
        if self.variant_id.data and not typed:
            self.quantity.errors.append(_l("Give a quantity for this item."))
            valid = False
        elif not self.variant_id.data and typed and not self.variant_id.errors \
                and not self.quantity.errors:
            self.variant_id.errors.append(_l("Choose the item for this quantity."))
            valid = False
        return valid

    @property
    def error_messages(self) -> list[str]:
        """This line's errors as sentences, item first (shown next to the line)."""
        return [*self.variant_id.errors, *self.quantity.errors]


class DraftForm(FlaskForm):
    customer_name = StringField(_l("Customer name"), validators=[
        DataRequired(_l("Give the customer's name.")), Length(max=120, message=TOO_LONG)])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40, message=TOO_LONG)])
    email = StringField(_l("Email"), validators=[Optional(), Length(max=254, message=TOO_LONG)])
    address = TextAreaField(_l("Delivery address"),
                            validators=[Optional(), Length(max=500, message=TOO_LONG)])
    lines = FieldList(FormField(LineForm), min_entries=0, max_entries=MAX_LINES)
    shipping_method = SelectField(_l("Shipping method"), coerce=int,
                                  validators=[DataRequired(_l("Choose a shipping method."))])
    shipping_fee = StringField(_l("Shipping fee (blank: the method's fee)"),
                               validators=[Optional(), Length(max=20, message=TOO_LONG)])
    discount = StringField(_l("Discount"), validators=[Optional(), Length(max=20, message=TOO_LONG)])
    # The item search and the customer lookup travel with the form (without
    # JavaScript they are answered by the builder's refresh).
    q = StringField(_l("Find an item"), validators=[Optional(), Length(max=100, message=TOO_LONG)])
    lookup = StringField(_l("Find a customer"),
                         validators=[Optional(), Length(max=100, message=TOO_LONG)])


class DeleteForm(FlaskForm):
    """A bare button: only the CSRF token."""
