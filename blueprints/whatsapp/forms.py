"""Settings → WhatsApp forms. The domain (domain/notify/whatsapp_config.py, billing.py)
does the real validation; these only bound the input and say what is missing."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import Optional

from blueprints.auth.forms import at_most, required


class CredentialsForm(FlaskForm):
    phone_number_id = StringField(_l("Phone number ID"), validators=[required(), at_most(64)])
    business_account_id = StringField(_l("WhatsApp Business Account ID"),
                                      validators=[required(), at_most(64)])
    # PasswordField never writes its value back into the page (hide_value), so a
    # refused form does not echo the secret either. Empty keeps the saved one.
    access_token = PasswordField(_l("Access token"), validators=[at_most(1000)])
    app_secret = PasswordField(_l("App secret"), validators=[at_most(200)])


class TestMessageForm(FlaskForm):
    phone = StringField(_l("Send to (mobile number)"), validators=[required(), at_most(40)])


class TypeSwitchForm(FlaskForm):
    enabled = BooleanField(_l("On"))


class CapForm(FlaskForm):
    cap = StringField(_l("Monthly cap (HKD, empty = no cap)"), validators=[Optional(), at_most(12)])


class PriceForm(FlaskForm):
    price = StringField(_l("New price per message (HKD)"), validators=[required(), at_most(12)])
    # "YYYY-MM-DD" (the browser's date input); domain/notify/billing.py reads and checks it.
    effective_from = StringField(_l("From (date)"), validators=[required(), at_most(10)])
