"""Modify order races on a real SQLite file (threads, each its own connection):
two staff saving one version, a save against the expiry and against a payment
confirmation, two confirmations of one balance payment. Rounds repeat each race
so both orders of arrival are met."""

from __future__ import annotations

import pytest
from test_modify_domain_helpers import (
    confirm_scenario,
    double_confirm_scenario,
    expiry_scenario,
    set_plan,
    stock_deltas_scenario,
    two_staff_scenario,
)

ROUNDS = 15


@pytest.fixture
def advanced(app):
    set_plan("advanced")


def test_stock_deltas(app, advanced):
    stock_deltas_scenario()


def test_two_staff_saving_at_once(app, advanced):
    for _ in range(ROUNDS):
        two_staff_scenario(app)


def test_modify_racing_expiry(app, advanced):
    for _ in range(ROUNDS):
        expiry_scenario(app)


def test_modify_racing_confirm_payment(app, advanced):
    for _ in range(ROUNDS):
        confirm_scenario(app)


def test_one_balance_payment_confirmed_twice_at_once(app, advanced):
    for _ in range(ROUNDS):
        double_confirm_scenario(app)
