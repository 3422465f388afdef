"""The gateway flow: the customer is charged exactly what the placed order costs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from domain.db import db
from domain.errors import ValidationError
from domain.models import Order, PaymentMethod, ShippingMethod, Variant
from domain.orders import PRICE_CHANGED, Checkout, CustomerDetails
from domain.payments import TestGateway, place_checkout


class PriceMovesDuringCheckout(TestGateway):
    """The test gateway, plus a merchant who edits the price while the card is authorized."""

    def __init__(self, variant_id: int):
        self.variant_id, self.calls = variant_id, []

    def authorize(self, amount_cents, currency, **kw):
        self.calls.append(("authorize", amount_cents))
        db.session.execute(update(Variant).where(Variant.id == self.variant_id)
                           .values(price_cents=Variant.price_cents + 100))
        db.session.commit()
        return super().authorize(amount_cents, currency, **kw)

    def capture(self, charge):
        self.calls.append(("capture", charge.amount_cents))
        return super().capture(charge)

    def void(self, charge):
        self.calls.append(("void", charge.amount_cents))
        return super().void(charge)


def _checkout(variant_id):
    card = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "credit_card"))
    ship = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    return Checkout(customer=CustomerDetails(name="陳大文", phone="9123 4567", address="旺角"),
                    items=[(variant_id, 2)], payment_method_id=card, shipping_method_id=ship)


def test_charged_amount_is_the_order_total(app, make_variant):
    variant = make_variant(price_cents=12800, stock=5)
    gateway = TestGateway()
    order = place_checkout(_checkout(variant.id), gateway=gateway)
    assert order.status == "processing" and order.total_cents == 2 * 12800 + 3000


def test_price_change_during_checkout_voids_and_places_nothing(app, make_variant):
    variant = make_variant(price_cents=12800, stock=5)
    gateway = PriceMovesDuringCheckout(variant.id)
    with pytest.raises(ValidationError, match="price changed"):
        place_checkout(_checkout(variant.id), gateway=gateway)
    assert gateway.calls == [("authorize", 2 * 12800 + 3000), ("void", 2 * 12800 + 3000)]
    db.session.rollback()
    assert db.session.scalar(select(func.count(Order.id))) == 0
    assert db.session.get(Variant, variant.id).stock == 5
    assert PRICE_CHANGED.startswith("The price changed")


def test_draft_edited_during_checkout_voids(app, owner, make_variant):
    from domain.actors import Actor
    from domain.drafts import DraftInput, checkout_draft, create_draft

    variant = make_variant(price_cents=5000, stock=5)
    ship = db.session.scalar(select(ShippingMethod.id).where(ShippingMethod.kind == "delivery"))
    draft = create_draft(DraftInput(
        customer=CustomerDetails(name="黃小姐", phone="6123 4567", address="沙田"),
        items=[(variant.id, 1)], shipping_method_id=ship), actor=Actor.staff(owner))
    card = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.code == "credit_card"))

    class DraftEditedMeanwhile(TestGateway):
        voided = False

        def authorize(self, amount_cents, currency, **kw):
            db.session.execute(update(Order).where(Order.id == draft.id)
                               .values(discount_cents=1000))
            db.session.commit()
            return super().authorize(amount_cents, currency, **kw)

        def void(self, charge):
            DraftEditedMeanwhile.voided = True
            return super().void(charge)

    with pytest.raises(ValidationError, match="price changed"):
        checkout_draft(draft.id, card, gateway=DraftEditedMeanwhile())
    assert DraftEditedMeanwhile.voided
    db.session.rollback()
    assert db.session.get(Order, draft.id).kind == "draft"
    assert db.session.get(Variant, variant.id).stock == 5
