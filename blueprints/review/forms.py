"""Forms of the payment review pages."""

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from domain.deadlines import MAX_EXTENSION_DAYS


class ExtendDeadlineForm(FlaskForm):
    days = IntegerField("Extend by (days)", default=1, validators=[
        InputRequired("Give a number of days."),
        NumberRange(1, MAX_EXTENSION_DAYS, f"Extend by 1 to {MAX_EXTENSION_DAYS} days.")])
