"""The desk's setup checklist (issue 13): what a new store still needs before it
can take a real order, each step with where it is done.

The desk shows it until every step is done; then it is gone (no dismiss). It is
read on full desk page loads only, so it stays cheap: the settings row (already
in the session's identity map on every page) and two small queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select

from domain.db import db
from domain.i18n import N_
from domain.models import PaymentMethod, Product, ShippingMethod, Variant
from domain.payment_details import is_ready
from domain.store import get_settings

DEFAULT_STORE_NAME = "My Shop"


@dataclass(frozen=True)
class Step:
    key: str
    label: str  # message id, translated where shown
    hint: str  # message id: what to do there
    done: bool
    endpoint: str  # where it is done (a desk endpoint)
    fallback_endpoint: str = ""  # when ``endpoint`` is not registered (yet)


@dataclass(frozen=True)
class Checklist:
    steps: tuple[Step, ...]
    done_count: int
    ready: bool

    @property
    def total(self) -> int:
        return len(self.steps)


def checklist() -> Checklist:
    """The steps, in the order a new merchant does them."""
    settings = get_settings()
    session = db.session
    methods = session.scalars(select(PaymentMethod).where(PaymentMethod.enabled)).all()
    # One round trip for both existence checks.
    has_shipping, has_product = session.execute(select(
        exists().where(ShippingMethod.enabled),
        exists().where(Product.active, Variant.product_id == Product.id, Variant.active),
    )).one()
    name = (settings.name or "").strip()
    steps = (
        Step("store", N_("Store name and logo"),
             N_("Give the store its own name and upload a logo."),
             bool(name) and name != DEFAULT_STORE_NAME and bool(settings.logo_path),
             "settings.store_info"),
        Step("payment", N_("A way to pay"),
             N_("Fill in the FPS ID, bank account or PayMe link, then turn the method on."),
             # A manual method with its details: the only gateway that ships is the test
             # one, which moves no money, so an online method alone takes no payment.
             any(m.is_manual and is_ready(m) for m in methods), "settings.payments"),
        Step("shipping", N_("A shipping method"),
             N_("Turn on at least one way to deliver or pick up."),
             bool(has_shipping), "settings.shipping"),
        Step("product", N_("A product for sale"),
             N_("Add your first product with its price and stock."),
             bool(has_product), "products.new", "products.index"),
        Step("notification_email", N_("Notification email"),
             N_("Say where new orders and payment proofs are emailed."),
             bool((settings.notification_email or "").strip()), "settings.store_info"),
    )
    done = sum(step.done for step in steps)
    return Checklist(steps, done, done == len(steps))
