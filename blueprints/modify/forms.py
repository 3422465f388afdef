"""Forms of the modify editor and the balance actions. Every POST is a FlaskForm, so
every one carries CSRF. The editor's lines are not WTForms fields (their number changes
as the merchant adds and removes items): blueprints/modify/state.py reads and checks them.
"""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

TOO_LONG = _l("At most %(max)d characters.")


class ModifyForm(FlaskForm):
    """The editor's fields besides its lines. Amounts are text, parsed by
    domain.money.parse_money (the same rules and messages as everywhere)."""

    # The version the merchant started from: a save against an older one is refused.
    version = IntegerField(_l("Version"), validators=[
        InputRequired(_l("Reload the order and try again.")),
        NumberRange(1, 2**31 - 1, _l("Reload the order and try again."))])
    shipping_method = SelectField(_l("Shipping method"), coerce=int, validate_choice=True,
                                  validators=[InputRequired(_l("Choose a shipping method."))])
    shipping_fee = StringField(_l("Shipping fee"),
                               validators=[Optional(), Length(max=20, message=TOO_LONG)])
    discount = StringField(_l("Discount"),
                           validators=[Optional(), Length(max=20, message=TOO_LONG)])
    extra_charge = StringField(_l("Extra charge"),
                               validators=[Optional(), Length(max=20, message=TOO_LONG)])
    extra_charge_label = StringField(_l("Label of the extra charge"),
                                     validators=[Optional(), Length(max=80, message=TOO_LONG)])


class BalanceDeclineForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give a reason.")),
                                                      Length(max=500, message=TOO_LONG)])


class BalanceProofForm(FlaskForm):
    """The customer's proof for a balance due (their order page)."""

    proof = FileField(_l("Proof of the balance payment"),
                      validators=[FileRequired(_l("Choose a file to upload."))])
