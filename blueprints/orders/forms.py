"""Forms for the order desk. Every mutation is a FlaskForm, so every one carries CSRF."""

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from domain.orders import REFUND_METHODS


class ConfirmForm(FlaskForm):
    """A bare button: only the CSRF token."""


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired("Give a reason."), Length(max=500)])


class ShipForm(FlaskForm):
    tracking_code = StringField("Tracking code", validators=[Optional(), Length(max=64)])


class TrackingForm(FlaskForm):
    tracking_code = StringField("Tracking code", validators=[Length(max=64)])


class NoteForm(FlaskForm):
    text = TextAreaField("Internal note", validators=[DataRequired("Write the note."),
                                                      Length(max=2000)])


class RefundNoteForm(FlaskForm):
    amount = StringField("Amount refunded", validators=[DataRequired("Give the amount.")])
    method = SelectField("Refunded by", choices=[(m, m) for m in REFUND_METHODS])
    reference = StringField("Reference", validators=[Optional(), Length(max=120)])


def first_error(form: FlaskForm) -> str:
    for field_name, errors in form.errors.items():
        if errors:
            label = getattr(form, field_name).label.text if hasattr(form, field_name) else ""
            return f"{label}: {errors[0]}" if label and field_name != "csrf_token" else errors[0]
    return "The form is not valid."
