"""Forms of the payment review pages."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from domain.deadlines import MAX_EXTENSION_DAYS


class ExtendDeadlineForm(FlaskForm):
    # WTForms fills in %(min)s and %(max)s.
    days = IntegerField(_l("Extend by (days)"), default=1, validators=[
        InputRequired(_l("Give a number of days.")),
        NumberRange(1, MAX_EXTENSION_DAYS, _l("Extend by %(min)s to %(max)s days."))])
