"""Forms for the order desk. Every mutation is a FlaskForm, so every one carries CSRF."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from domain.orders import REFUND_METHODS


class ConfirmForm(FlaskForm):
    """A bare button: only the CSRF token."""


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(_l("Give a reason.")),
                                                      Length(max=500)])


class ShipForm(FlaskForm):
    tracking_code = StringField(_l("Tracking code"), validators=[Optional(), Length(max=64)])


class TrackingForm(FlaskForm):
    tracking_code = StringField(_l("Tracking code"), validators=[Length(max=64)])


class NoteForm(FlaskForm):
    text = TextAreaField(_l("Internal note"), validators=[DataRequired(_l("Write the note.")),
                                                          Length(max=2000)])


class RefundNoteForm(FlaskForm):
    amount = StringField(_l("Amount refunded"), validators=[DataRequired(_l("Give the amount."))])
    # The stored value stays the message id; the option reads in the reader's language.
    method = SelectField(_l("Refunded by"), choices=[(m, _l(m)) for m in REFUND_METHODS])
    reference = StringField(_l("Reference"), validators=[Optional(), Length(max=120)])


class RetryMessageForm(FlaskForm):
    """Send one of the order's messages again. The id travels in the form (not the URL);
    ``may_have_arrived`` is the staff member's word that a message whose outcome is
    unknown may be sent a second time."""

    # Checked by the view: an id that is not one of this order's messages is a 404.
    message_id = StringField(_l("Message"))
    may_have_arrived = BooleanField(_l("I understand it may already have arrived"))


def first_error(form: FlaskForm) -> str:
    for field_name, errors in form.errors.items():
        if errors:
            label = getattr(form, field_name).label.text if hasattr(form, field_name) else ""
            if label and field_name != "csrf_token":
                return _("%(field)s: %(error)s", field=label, error=errors[0])
            return str(errors[0])
    return _("The form is not valid.")
