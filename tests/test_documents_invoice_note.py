"""The invoice note (Settings → Store, issue 11): validated, saved, kept when a caller
leaves it out, and printed at the foot of every invoice, escaped."""

from __future__ import annotations

import pytest
from test_documents_fixtures import *  # noqa: F403 (fixtures)
from test_documents_fixtures import pdf_text, squash

from domain.db import db
from domain.documents import render_pdf
from domain.errors import ValidationError
from domain.models import StoreSettings
from domain.store import INVOICE_NOTE_MAX, get_settings, update_store_info


def form(**overrides):
    s = get_settings()
    values = dict(name=s.name, address=s.address, phone=s.phone, email=s.email,
                  notification_email=s.notification_email, currency=s.currency,
                  timezone=s.timezone, plan=s.plan, order_prefix=s.order_prefix,
                  payment_deadline_days="", reminder_lead_hours="", language=s.language)
    values.update(overrides)
    return values


def note() -> str:
    db.session.expire_all()
    return db.session.get(StoreSettings, 1).invoice_note


def test_domain_saves_strips_and_keeps(app):
    update_store_info(**form(invoice_note="  Thank you!\n多謝惠顧  "))
    assert note() == "Thank you!\n多謝惠顧"
    values = form()
    values.pop("invoice_note", None)
    update_store_info(**values)  # a caller without the field keeps the note
    assert note() == "Thank you!\n多謝惠顧"
    update_store_info(**form(invoice_note=""))
    assert note() == ""


@pytest.mark.parametrize("bad", ["x" * (INVOICE_NOTE_MAX + 1), "bell\x07", "nul\x00"])
def test_domain_refuses_bad_notes(app, bad):
    with pytest.raises(ValidationError):
        update_store_info(**form(invoice_note=bad))
    assert note() == ""


def test_owner_saves_it_on_the_store_page(owner_client):
    page = owner_client.get("/settings/store").get_data(as_text=True)
    assert 'name="invoice_note"' in page
    response = owner_client.post("/settings/store", form(invoice_note="Returns within 7 days"))
    assert response.status_code == 302
    assert note() == "Returns within 7 days"


def test_too_long_is_refused_on_the_page(owner_client):
    response = owner_client.post("/settings/store", form(invoice_note="x" * 1001))
    assert response.status_code == 422
    assert note() == ""


def test_staff_cannot_set_it(staff_client):
    assert staff_client.post("/settings/store", form(invoice_note="hijack")).status_code == 403
    assert note() == ""


def test_invoice_prints_it_escaped(owner_client, en_order):
    owner_client.post("/settings/store", form(invoice_note='<b>Bold?</b> <img src="/etc/passwd">'))
    text = squash(pdf_text(render_pdf("invoice", [en_order.id])))
    assert squash('<b>Bold?</b> <img src="/etc/passwd">') in text
    # Not on the packing list.
    assert "Bold?" not in pdf_text(render_pdf("packing_list", [en_order.id]))
