"""SQLAlchemy models for the whole store. Money is integer cents; times are UTC."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

import domain.search_text  # noqa: F401  (registers the search triggers' SQLite function)
from domain.db import db, utcnow  # noqa: F401  (utcnow: imported from here everywhere)
from domain.status import DeliveryStatus, OrderStatus


def new_token() -> str:
    return secrets.token_urlsafe(24)


class StoreSettings(db.Model):
    """The one row of store-wide settings (id is always 1)."""

    __tablename__ = "store_settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="My Shop")
    logo_path: Mapped[str | None] = mapped_column(String(255))
    address: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    notification_email: Mapped[str] = mapped_column(String(254), default="")
    currency: Mapped[str] = mapped_column(String(3), default="HKD")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Hong_Kong")
    plan: Mapped[str] = mapped_column(String(20), default="basic")
    order_prefix: Mapped[str] = mapped_column(String(8), default="SD")
    payment_deadline_days: Mapped[int | None] = mapped_column(Integer)
    reminder_lead_hours: Mapped[int | None] = mapped_column(Integer)
    # What staff read until they choose, and what customers read before they choose.
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    # Printed at the foot of every invoice (return policy, thanks).
    invoice_note: Mapped[str] = mapped_column(Text, default="", server_default="")


class User(db.Model):
    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10), default="staff")  # owner | staff
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locale: Mapped[str | None] = mapped_column(String(16))  # None: the store's language

    # Flask-Login protocol, kept here so the model stays the single source.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def label(self) -> str:
        return self.name or self.email


class LoginThrottle(db.Model):
    """A streak of failed sign-ins per key: "pair:<email>|<address>", "account:<email>"
    or "address:<address>". ``failures`` counts attempts reserved before the password
    check (domain/accounts.py); ``window_start`` is when the streak began and
    ``last_attempt_at`` when it last grew (a streak is forgotten a day later)."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)


class UserSession(db.Model):
    """One signed-in device (domain/sessions.py). The session cookie carries
    "<id>.<secret>" and a remember cookie "<id>.<token>"; only SHA-256 hashes of
    the secret and the token are stored. Deleting the row signs the device out."""

    __tablename__ = "user_session"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    remember_hash: Mapped[str | None] = mapped_column(String(64))
    previous_remember_hash: Mapped[str | None] = mapped_column(String(64))
    remember_rotated_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    device: Mapped[str] = mapped_column(String(80), default="")
    address: Mapped[str] = mapped_column(String(45), default="")
    # Loaded with the record on every desk request (sessions.resolve), so the user
    # loader finds the user without a second statement.
    user: Mapped[User] = relationship()

    @property
    def remembered(self) -> bool:
        return self.remember_hash is not None


class KnownAddress(db.Model):
    """An address a user has signed in from: sign-ins from it skip the account-wide
    and address-wide throttles, so strangers cannot lock the owner out."""

    __tablename__ = "known_address"
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Product(db.Model):
    __tablename__ = "product"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: archived, not sold
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    image_path: Mapped[str | None] = mapped_column(String(255))  # under UPLOAD_FOLDER/products
    archived_at: Mapped[datetime | None] = mapped_column(DateTime)
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", order_by="Variant.id", cascade="all, delete-orphan"
    )


class Variant(db.Model):
    """A sellable item. ``stock`` None means unlimited.

    ``stock`` only ever moves through domain/inventory.py, and each move is a
    StockMove row: the ledger's sum is the stock count.
    """

    __tablename__ = "variant"
    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    barcode: Mapped[str] = mapped_column(String(64), default="")
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int | None] = mapped_column(Integer)
    low_stock_threshold: Mapped[int | None] = mapped_column(Integer)  # None: no warning
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False: removed, kept for history
    product: Mapped[Product] = relationship(back_populates="variants")

    __table_args__ = (
        Index("uq_variant_barcode", "barcode", unique=True, sqlite_where=text("barcode <> ''"),
              postgresql_where=text("barcode <> ''")),
    )

    @property
    def display_name(self) -> str:
        return f"{self.product.name} — {self.name}" if self.name else self.product.name

    @property
    def unlimited(self) -> bool:
        return self.stock is None

    @property
    def low_stock(self) -> bool:
        return (self.stock is not None and self.low_stock_threshold is not None
                and self.stock <= self.low_stock_threshold)


class StockMove(db.Model):
    """One change of a variant's stock (domain/inventory.py): an order's hold, a
    restock on cancel, a modification, an import or a manual adjustment.
    The sum of a variant's ``delta`` is its stock (0 while unlimited)."""

    __tablename__ = "stock_move"
    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variant.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(20))  # domain.inventory.REASONS
    note: Mapped[str] = mapped_column(String(200), default="")
    order_id: Mapped[int | None] = mapped_column(Integer)
    order_number: Mapped[str] = mapped_column(String(20), default="")
    actor_type: Mapped[str] = mapped_column(String(10), default="system")
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        Index("ix_stock_move_variant", "variant_id", "id"),
        Index("ix_stock_move_order", "order_id"),
    )


class Customer(db.Model):
    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PaymentMethod(db.Model):
    __tablename__ = "payment_method"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))  # online | manual
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    instructions: Mapped[str] = mapped_column(Text, default="")
    # Typed details for the built-in manual methods (domain/payment_details.py).
    payee_name: Mapped[str] = mapped_column(String(120), default="")
    fps_id: Mapped[str] = mapped_column(String(120), default="")
    bank_name: Mapped[str] = mapped_column(String(120), default="")
    account_number: Mapped[str] = mapped_column(String(40), default="")
    payme_link: Mapped[str] = mapped_column(String(300), default="")
    deadline_days: Mapped[int | None] = mapped_column(Integer)  # overrides the store's
    position: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def is_manual(self) -> bool:
        return self.kind == "manual"


class ShippingMethod(db.Model):
    __tablename__ = "shipping_method"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(12))  # delivery | pickup | logistics
    fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Order(db.Model):
    """A placed order, or a draft built on behalf of a customer (kind="draft").

    Customer, payment and shipping details are snapshots taken when the order
    is made, so later edits to settings never rewrite history.
    """

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(8), default="placed")  # placed | draft
    status: Mapped[str | None] = mapped_column(String(24))
    delivery_status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.UNFULFILLED)
    source: Mapped[str] = mapped_column(String(16), default="online_store")
    public_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_token)
    # The language the customer placed it in: every later message and paper uses
    # it (None for orders from before languages: the store's language).
    locale: Mapped[str | None] = mapped_column(String(16))

    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"), index=True)
    customer_name: Mapped[str] = mapped_column(String(120), default="")
    customer_phone: Mapped[str] = mapped_column(String(40), default="")
    # customer_phone read in the store's country (domain.phones.store_e164):
    # "+85297575358", or "" when it holds no possible number.
    customer_phone_e164: Mapped[str] = mapped_column(String(20), default="", server_default="")
    customer_email: Mapped[str] = mapped_column(String(254), default="")
    shipping_address: Mapped[str] = mapped_column(Text, default="")
    # What the customer wrote for the shop at checkout ("please ring twice"): shown on
    # the order and printed on the packing list.
    customer_note: Mapped[str] = mapped_column(Text, default="", server_default="")

    payment_method_id: Mapped[int | None] = mapped_column(ForeignKey("payment_method.id"))
    payment_method_name: Mapped[str] = mapped_column(String(80), default="")
    payment_kind: Mapped[str] = mapped_column(String(10), default="")
    shipping_method_id: Mapped[int | None] = mapped_column(ForeignKey("shipping_method.id"))
    shipping_method_name: Mapped[str] = mapped_column(String(80), default="")
    shipping_kind: Mapped[str] = mapped_column(String(12), default="delivery")

    subtotal_cents: Mapped[int] = mapped_column(Integer, default=0)
    discount_cents: Mapped[int] = mapped_column(Integer, default=0)
    shipping_fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    extra_charge_cents: Mapped[int] = mapped_column(Integer, default=0)
    extra_charge_label: Mapped[str] = mapped_column(String(80), default="", server_default="")
    total_cents: Mapped[int] = mapped_column(Integer, default=0)
    # Money the customer has paid, or sent a proof for, towards this order: the
    # total when it left Pending payment, plus balance payments received. Once
    # paid, total - paid is a balance due, and paid - refunded - total a credit
    # owed (domain.modify). No money moves through Shopdesk; this is the books.
    paid_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Raised by every modification; a save made against an older version is refused.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    tracking_code: Mapped[str] = mapped_column(String(64), default="")
    # "Resend email" presses so far (SPEC §2: at most 5), raised by a guarded UPDATE.
    email_resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tracking_code_by_carrier: Mapped[bool] = mapped_column(Boolean, default=False)

    payment_deadline_at: Mapped[datetime | None] = mapped_column(DateTime)
    reminder_at: Mapped[datetime | None] = mapped_column(DateTime)
    proof_path: Mapped[str | None] = mapped_column(String(255))
    proof_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    proof_uploaded_at: Mapped[datetime | None] = mapped_column(DateTime)
    cancel_reason: Mapped[str] = mapped_column(Text, default="")

    placed_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[OrderEvent]] = relationship(
        back_populates="order", order_by="OrderEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # The list's two date orders, each covering every filter column, so a filtered
        # count reads only the index (migration e7a9c1b3d5f6); id right after placed_at
        # keeps the list's (placed_at, id) order the index's own.
        Index("ix_order_kind_status_placed", "kind", "status", "placed_at", "id",
              "payment_method_id", "shipping_method_id", "delivery_status", "source"),
        Index("ix_order_kind_placed", "kind", "placed_at", "id", "status",
              "payment_method_id", "shipping_method_id", "delivery_status", "source"),
        Index("ix_order_status_deadline", "status", "payment_deadline_at"),
        # Covers every list filter, so counting search matches reads this small index.
        Index("ix_orders_search_cover", "id", "kind", "status", "placed_at", "created_at",
              "payment_method_id", "shipping_method_id", "delivery_status", "source"),
        # A search's tab counts read only the status of each match: probing three
        # columns by id costs half of probing the nine above (migration a3c5e7f9b1d4).
        Index("ix_orders_status_by_id", "id", "kind", "status"),
    )

    @property
    def status_info(self) -> OrderStatus | None:
        return OrderStatus(self.status) if self.status else None

    @property
    def is_draft(self) -> bool:
        return self.kind == "draft"


class OrderLine(db.Model):
    __tablename__ = "order_line"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variant.id"), index=True)
    product_id: Mapped[int | None] = mapped_column(Integer, index=True)
    product_name: Mapped[str] = mapped_column(String(200))
    variant_name: Mapped[str] = mapped_column(String(120), default="")
    sku: Mapped[str] = mapped_column(String(64), default="")
    barcode: Mapped[str] = mapped_column(String(64), default="")
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    order: Mapped[Order] = relationship(back_populates="lines")

    @property
    def line_total_cents(self) -> int:
        return self.unit_price_cents * self.quantity


class BalancePayment(db.Model):
    """Money asked for after a modification raised a paid order's total: the
    customer's proof for the balance (pending -> confirmed / declined), or the
    merchant's "received" (confirmed, no proof)."""

    __tablename__ = "balance_payment"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    proof_path: Mapped[str | None] = mapped_column(String(255))
    proof_sha256: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")  # why it was declined
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by: Mapped[str] = mapped_column(String(254), default="")


class Shipment(db.Model):
    """A parcel booked with a logistics-automation carrier: its tracking code
    (locked on the order) and the data the label prints."""

    __tablename__ = "shipment"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    carrier: Mapped[str] = mapped_column(String(40))
    tracking_code: Mapped[str] = mapped_column(String(64))
    weight_grams: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class OrderEvent(db.Model):
    """One history entry. ``details`` holds what changed, old and new values,
    reasons: enough for notifications to be derived from events alone."""

    __tablename__ = "order_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    actor_type: Mapped[str] = mapped_column(String(10))  # staff | customer | system
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    order: Mapped[Order] = relationship(back_populates="events")


class Job(db.Model):
    """A background job's visible state (pending/running/done/failed)."""

    __tablename__ = "job"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    progress: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result_path: Mapped[str | None] = mapped_column(String(255))
    result_name: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str] = mapped_column(Text, default="")
    # What a bulk job did, for the progress page: counts, and the orders it skipped
    # with the reason ({"done": n, "skipped": [{"number": "SD1", "reason": "..."}]}).
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    user_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class SavedView(db.Model):
    """A named orders-page query string (search + filters + tab)."""

    __tablename__ = "saved_view"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    query_string: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class OrderCount(db.Model):
    """How many orders of a kind are in a status (a draft's status is ""). Kept by
    triggers on ``orders`` (migration d1a3c5e7f9b2) in the statement that changes an
    order, so in its transaction; read and repaired by domain.order_counts."""

    __tablename__ = "order_count"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    status: Mapped[str] = mapped_column(String(24), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


# The notification models (the outbox, the desk's bell, WhatsApp) live in their own
# module; imported here so every model is reachable as domain.models.<Name>.
from domain.models_notify import (  # noqa: E402,F401
    DeskNotification,
    OutboxMessage,
    WhatsAppCharge,
    WhatsAppConfig,
    WhatsAppPrice,
    WhatsAppStatus,
)
