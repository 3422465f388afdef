"""Logistics-automation carriers (SPEC §3; issue 11): the adapter a shipping method of
kind "logistics" books parcels through, and the clearly labelled test carrier.

A carrier takes a parcel (recipient, phone, address, weight, the order number as the
booking reference) and returns a tracking code and what the label prints. It is the
shipping counterpart of domain.payments' gateway: ``CARRIER`` in the config names it,
``test`` (the default) books nothing real.

Carriers are asked to treat the reference as an idempotency key: booking the same
reference twice returns the same parcel. domain.shipments relies on that to retry a
booking that was interrupted after the carrier answered but before the code was stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app, has_app_context

from domain.errors import DomainError
from domain.i18n import N_

MAX_WEIGHT_GRAMS = 30_000


class CarrierError(DomainError):
    """The carrier refused or could not book the parcel. ``retryable`` says whether the
    same request may succeed later (the carrier was busy) or needs a change first (a bad
    address, too heavy). The message is a message id (the test carrier's, marked N_) or a
    real carrier's own words, shown as they came."""

    def __init__(self, msgid: str, /, *, retryable: bool = False, **params):
        super().__init__(msgid, **params)
        self.retryable = retryable


@dataclass(frozen=True)
class Parcel:
    reference: str  # the order number: the carrier's booking reference
    recipient_name: str
    phone: str
    address: str
    weight_grams: int
    sender_name: str = ""  # the store, from its settings
    sender_phone: str = ""
    sender_address: str = ""


@dataclass(frozen=True)
class Booking:
    tracking_code: str
    label: dict[str, Any] = field(default_factory=dict)  # what the shipping label prints


class Carrier(Protocol):
    code: str
    label: str  # a message id, shown on the order page
    is_test: bool

    def create_shipment(self, parcel: Parcel) -> Booking: ...


class TestCarrier:
    """A carrier that collects no parcel. Its codes have the UPU S10 shape couriers use,
    ``TC123456785HK``: "TC", eight digits from the reference, a check digit, "HK"; the
    same reference always gets the same code.

    It fails on purpose, so failures can be tried out and tested:
    - an address containing ``FAIL-CARRIER`` is refused (not retryable);
    - an address containing ``BUSY-CARRIER`` finds the carrier unavailable (retryable);
    - a parcel over 30 kg is refused as too heavy;
    - the config ``TEST_CARRIER_FAIL`` = "refused" or "busy" fails every booking.
    """

    code = "test"
    label = N_("Test carrier — no parcel is collected")
    is_test = True
    FAIL_MARK = "FAIL-CARRIER"
    BUSY_MARK = "BUSY-CARRIER"

    def create_shipment(self, parcel: Parcel) -> Booking:
        forced = current_app.config.get("TEST_CARRIER_FAIL") if has_app_context() else None
        address = parcel.address.upper()
        if forced == "busy" or self.BUSY_MARK in address:
            raise CarrierError(N_("The carrier is not answering right now (test carrier). "
                                  "Nothing was booked; try again in a few minutes."),
                               retryable=True)
        if forced == "refused" or self.FAIL_MARK in address:
            raise CarrierError(N_("The carrier refused the address (test carrier: the "
                                  "address contains FAIL-CARRIER). Nothing was booked."))
        if parcel.weight_grams > MAX_WEIGHT_GRAMS:
            raise CarrierError(N_("The parcel is too heavy for the carrier: at most 30 kg. "
                                  "Nothing was booked."))
        if parcel.weight_grams <= 0:
            raise CarrierError(N_("The carrier needs the parcel's weight."))
        code = tracking_code_for(parcel.reference)
        return Booking(code, {
            "carrier": self.code, "service": "Test Standard", "tracking_code": code,
            "recipient": parcel.recipient_name, "phone": parcel.phone,
            "address": parcel.address, "weight_grams": parcel.weight_grams,
            "reference": parcel.reference, "test": True,
            "sender": parcel.sender_name, "sender_phone": parcel.sender_phone,
            "sender_address": parcel.sender_address,
            # Where the parcel is sorted: printed large on the label.
            "route": f"T{int(code[2:5]) % 20 + 1:02d}",
        })


def tracking_code_for(reference: str) -> str:
    """The test carrier's code for a reference: stable, and valid for domain.orders."""
    digits = f"{int(hashlib.sha256(reference.encode()).hexdigest(), 16) % 10**8:08d}"
    # The S10 check digit: weights 8 6 4 2 3 5 9 7, mod 11 (10 -> 0, 11 -> 5).
    check = 11 - sum(int(d) * w for d, w in zip(digits, (8, 6, 4, 2, 3, 5, 9, 7), strict=True)) % 11
    check = {10: 0, 11: 5}.get(check, check)
    return f"TC{digits}{check}HK"


CARRIERS = {"test": TestCarrier}


def get_carrier() -> Carrier:
    code = current_app.config.get("CARRIER", "test")
    try:
        return CARRIERS[code]()
    except KeyError as exc:  # a misconfiguration, not a merchant error
        raise RuntimeError(f"Unknown CARRIER {code!r}") from exc
