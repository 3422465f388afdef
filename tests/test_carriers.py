"""The carrier adapter and the clearly labelled test carrier (issue 11)."""

from __future__ import annotations

import pytest

from domain.documents.carriers import (
    CarrierError,
    Parcel,
    TestCarrier,
    get_carrier,
    tracking_code_for,
)
from domain.orders import TRACKING_RE


def parcel(**overrides):
    values = dict(reference="SD1001", recipient_name="陳大文", phone="9123 4567",
                  address="旺角彌敦道 1 號", weight_grams=1200, sender_name="曲奇店")
    values.update(overrides)
    return Parcel(**values)


def s10_check(digits: str) -> int:
    check = 11 - sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)) % 11
    return {10: 0, 11: 5}.get(check, check)


def test_booking_returns_a_valid_stable_code_and_label_data(app):
    # given the default carrier
    carrier = get_carrier()
    assert isinstance(carrier, TestCarrier) and carrier.is_test
    assert "no parcel is collected" in carrier.label
    # when a parcel is booked
    booking = carrier.create_shipment(parcel())
    # then its code has the S10 shape, passes domain.orders' rule and is stable
    code = booking.tracking_code
    assert TRACKING_RE.match(code) and len(code) == 13
    assert code.startswith("TC") and code.endswith("HK") and code[2:10].isdigit()
    assert int(code[10]) == s10_check(code[2:10])
    assert carrier.create_shipment(parcel()).tracking_code == code  # idempotent per reference
    assert tracking_code_for("SD1002") != code
    # and the label data is what the label prints
    label = booking.label
    assert (label["recipient"], label["phone"], label["address"]) == (
        "陳大文", "9123 4567", "旺角彌敦道 1 號")
    assert label["weight_grams"] == 1200 and label["tracking_code"] == code
    assert label["sender"] == "曲奇店" and label["test"] is True


@pytest.mark.parametrize("reference", [f"SD{n}" for n in range(1, 400)])
def test_every_code_is_valid(reference):
    code = tracking_code_for(reference)
    assert TRACKING_RE.match(code) and int(code[10]) == s10_check(code[2:10])


@pytest.mark.parametrize("overrides, retryable, words", [
    ({"address": "九龍 fail-carrier 街"}, False, "refused the address"),
    ({"address": "BUSY-CARRIER Road"}, True, "not answering"),
    ({"weight_grams": 30_001}, False, "too heavy"),
    ({"weight_grams": 0}, False, "weight"),
])
def test_documented_triggers_fail_on_purpose(app, overrides, retryable, words):
    with pytest.raises(CarrierError) as caught:
        TestCarrier().create_shipment(parcel(**overrides))
    assert caught.value.retryable is retryable
    assert words in str(caught.value)


def test_thirty_kg_exactly_is_accepted(app):
    assert TestCarrier().create_shipment(parcel(weight_grams=30_000)).tracking_code


@pytest.mark.parametrize("mode, retryable", [("refused", False), ("busy", True)])
def test_config_makes_every_booking_fail(app, mode, retryable):
    app.config["TEST_CARRIER_FAIL"] = mode
    with pytest.raises(CarrierError) as caught:
        TestCarrier().create_shipment(parcel())
    assert caught.value.retryable is retryable


def test_unknown_carrier_is_a_configuration_error(app):
    app.config["CARRIER"] = "nope"
    with pytest.raises(RuntimeError, match="Unknown CARRIER"):
        get_carrier()
