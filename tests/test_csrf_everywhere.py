"""Every mutating route in the app refuses a request without a CSRF token, htmx or not,
and changes nothing. Built from the URL map, so a new route is covered the day it lands."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text

from domain.db import db


def _snapshot() -> str:
    """A digest of every table's rows: proves that a refused request changed nothing."""
    tables = [r[0] for r in db.session.execute(text(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE 'order_search%' AND name != 'login_throttle'"))]
    digest = hashlib.sha256()
    for table in sorted(tables):
        rows = db.session.execute(text(f'SELECT * FROM "{table}" ORDER BY 1')).all()
        digest.update(json.dumps([list(map(str, r)) for r in rows]).encode())
    return digest.hexdigest()


# Machine APIs that prove themselves without a CSRF token (csrf.exempt): Meta's signed
# webhook and the WhatsApp sandbox's bearer-token API. Without their proof they refuse.
OWN_PROOF = {"whatsapp.webhook": "/settings/whatsapp/webhook",
             "whatsapp_sandbox.api": "/_sandbox/whatsapp/v21.0/sandbox-phone/messages"}


def _post_rules(app):
    return sorted((rule for rule in app.url_map.iter_rules() if "POST" in rule.methods
                   and rule.endpoint not in OWN_PROOF), key=lambda r: r.rule)


def _fill(rule, order, draft, view_id):
    values = {"number": order.number, "token": order.public_token, "view_id": view_id,
              "method_id": 1, "user_id": 1, "order_id": draft.id,
              "product_id": 1, "variant_id": 1, "code": "order_confirmation"}
    url = rule.rule
    for arg in rule.arguments:
        value = values[arg]
        if arg == "token" and "/d/" in rule.rule:
            value = draft.public_token
        url = url.replace(f"<{arg}>", str(value)).replace(f"<int:{arg}>", str(value))
    return url


@pytest.mark.parametrize("htmx", [False, True])
def test_every_post_route_needs_csrf(app, owner_client, owner, make_order, make_variant, htmx):
    from domain.actors import Actor
    from domain.saved_views import save_view

    order = make_order()
    draft_id = _make_draft(make_variant, Actor.staff(owner))
    from domain.models import Order
    draft = db.session.get(Order, draft_id)
    view = save_view(owner.id, "Mine", "status=processing")
    rules = _post_rules(app)
    assert len(rules) >= 30
    before = _snapshot()
    for rule in rules:
        url = _fill(rule, order, draft, view.id)
        response = owner_client.post(url, {"reason": "x", "text": "x", "name": "x",
                                           "tracking_code": "SF1", "days": "1"},
                                     htmx=htmx, csrf=False)
        assert response.status_code == 400, f"{url} answered {response.status_code} without CSRF"
    for endpoint, url in OWN_PROOF.items():
        if endpoint in app.view_functions:
            response = owner_client.post(url, {"text": "x"}, htmx=htmx, csrf=False)
            assert response.status_code in (401, 403), f"{url} answered {response.status_code}"
    assert _snapshot() == before


def _make_draft(make_variant, actor) -> int:
    from domain.drafts import DraftInput, create_draft
    from domain.models import ShippingMethod
    from domain.orders import CustomerDetails

    shipping = db.session.query(ShippingMethod).filter_by(kind="delivery").first()
    draft = create_draft(DraftInput(
        customer=CustomerDetails(name="陳大文", phone="9123 4567", address="旺角"),
        items=[(make_variant(stock=5).id, 1)], shipping_method_id=shipping.id), actor=actor)
    return draft.id
