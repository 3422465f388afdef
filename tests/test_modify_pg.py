"""Modify order on PostgreSQL (issue 12): stock deltas and the races of
tests/test_modify_domain_races.py, against the server on loopback (row locks and
READ COMMITTED instead of SQLite's one writer). Skipped when no server answers."""

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

pytest_plugins = ["outbox_fixtures"]  # pg_app: a fresh database with the real migrations

ROUNDS = 10


@pytest.fixture
def pg(pg_app):
    with pg_app.app_context():
        set_plan("advanced")
        yield pg_app


def test_stock_deltas_on_postgresql(pg):
    stock_deltas_scenario()


def test_two_staff_saving_at_once_on_postgresql(pg):
    for _ in range(ROUNDS):
        two_staff_scenario(pg)


def test_modify_racing_expiry_on_postgresql(pg):
    for _ in range(ROUNDS):
        expiry_scenario(pg)


def test_modify_racing_confirm_payment_on_postgresql(pg):
    for _ in range(ROUNDS):
        confirm_scenario(pg)


def test_one_balance_payment_confirmed_twice_on_postgresql(pg):
    for _ in range(ROUNDS):
        double_confirm_scenario(pg)
