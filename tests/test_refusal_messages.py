"""Every refusal of the transition table reads as whole sentences, as a person would write them."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from domain import orders as actions
from domain.actors import Actor
from domain.db import db
from domain.errors import InvalidTransition
from domain.models import Order
from domain.status import TRANSITIONS, DeliveryStatus, OrderStatus, allowed

STAFF = Actor("staff", 1, "Tester")

# A sentence: a capital letter first, no doubled words or spaces, a full stop last.
SENTENCE = re.compile(r"^[A-Z][^.!?]*[.!?]$")


def _refused_states():
    """Every (action, state) the table refuses, plus a draft for every action."""
    for action in TRANSITIONS:
        yield action, None, "delivery", DeliveryStatus.UNFULFILLED
        for status in OrderStatus:
            for kind in ("delivery", "pickup", "logistics"):
                for delivery in (DeliveryStatus.UNFULFILLED, DeliveryStatus.READY_FOR_PICKUP):
                    if not allowed(action, status, delivery, kind):
                        yield action, status, kind, delivery


def sentences(message: str) -> list[str]:
    # Split after a full stop that ends a sentence; "SD12001" and ": it" stay inside.
    return re.split(r"(?<=[.!?]) (?=[A-Z])", message)


@pytest.mark.parametrize("action,status,kind,delivery", list(_refused_states()))
def test_every_refusal_is_whole_sentences(action, status, kind, delivery):
    state = SimpleNamespace(number="SD12001", status=status, shipping_kind=kind,
                            delivery_status=delivery)
    message = str(actions._refuse(state, action))
    assert "be have" not in message and "be be" not in message, message
    assert "  " not in message and ".." not in message, message
    assert not re.search(r"\b(\w+) \1\b", message), message  # no doubled word
    assert "SD12001" in message, message
    first, *hints = sentences(message)
    assert " cannot " in first, message
    for sentence in (first, *hints):
        assert SENTENCE.match(sentence), f"{action}: {sentence!r} is not a sentence"


def test_every_action_has_its_own_sentence():
    assert set(actions.REFUSALS) == set(TRANSITIONS)
    for action, template in actions.REFUSALS.items():
        assert template.count("%(number)s") == 1 and template.count("%(status)s") == 1, action
        assert SENTENCE.match(template % {"number": "SD1", "status": "Completed"}), template


def test_declining_a_proof_of_a_paid_order_says_so_plainly(make_order):
    # given a paid order
    order = make_order(payment="credit_card")
    db.session.execute(update(Order).where(Order.id == order.id)
                       .values(status=OrderStatus.PROCESSING))
    db.session.commit()
    # when the proof is declined
    with pytest.raises(InvalidTransition) as refused:
        actions.decline_proof(order.id, "blurry", actor=STAFF)
    # then the refusal is one plain sentence
    assert str(refused.value) == (
        f"Order {order.number} is Processing: its payment proof cannot be declined.")
