"""Notification models: the outbox (one message to deliver, any channel), the desk's
bell, and the WhatsApp channel's settings, prices, billing ledger and webhook statuses.
Re-exported by domain/models.py."""

from __future__ import annotations

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
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.db import db, utcnow


class OutboxMessage(db.Model):
    """One message to deliver (domain/notify/outbox.py), written in the same
    transaction as the action that caused it. Content is rendered at send time.

    status: pending -> sending -> sent | failed (will be retried at
    ``next_attempt_at``) | dead (permanent refusal or last retry) | unknown (a
    send whose outcome was lost: shown to staff, never resent on its own).
    """

    __tablename__ = "outbox_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    # What caused it: "event:<order_event id>", "export:<job id>"; with channel and
    # recipient it is unique, so one event never writes a message twice.
    event_key: Mapped[str] = mapped_column(String(80))
    channel: Mapped[str] = mapped_column(String(16), default="email")
    recipient: Mapped[str] = mapped_column(String(254))
    audience: Mapped[str] = mapped_column(String(10))  # customer | merchant | staff
    kind: Mapped[str] = mapped_column(String(40))  # domain.notify.kinds
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(Integer)
    user_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    claim_token: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    copy_path: Mapped[str | None] = mapped_column(String(255))  # the rendered .eml, under instance/
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # A provider's own delivery report (WhatsApp webhooks): its message id and the
    # furthest status reached (sent -> delivered -> read, or failed with the error).
    provider_id: Mapped[str | None] = mapped_column(String(128))
    delivery_status: Mapped[str] = mapped_column(String(12), default="")
    delivery_error: Mapped[str] = mapped_column(Text, default="")
    delivery_at: Mapped[datetime | None] = mapped_column(DateTime)

    @property
    def shown_status(self) -> str:
        """What staff are told of it: once sent, the provider's furthest report
        (delivered, read, failed) when there is one; else the outbox status."""
        return self.delivery_status if self.status == "sent" and self.delivery_status else self.status

    __table_args__ = (
        UniqueConstraint("event_key", "channel", "recipient", name="uq_outbox_event_channel_recipient"),
        Index("ix_outbox_provider", "provider_id"),
        Index("ix_outbox_order", "order_id", "id"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
    )


class DeskNotification(db.Model):
    """One order event in one staff member's bell (domain/notify/alerts.py)."""

    __tablename__ = "desk_notification"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))  # the order event's type
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("user_id", "event_id", name="uq_desk_notification_user_event"),
        Index("ix_desk_notification_user_unread", "user_id", "read_at", "id"),
        Index("ix_desk_notification_order", "order_id"),
    )


class WhatsAppConfig(db.Model):
    """The store's WhatsApp channel (one row, id 1; domain/notify/whatsapp_config.py).
    The access token and app secret are stored encrypted (a key derived from SECRET_KEY)."""

    __tablename__ = "whatsapp_config"
    id: Mapped[int] = mapped_column(primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    phone_number_id: Mapped[str] = mapped_column(String(64), default="")
    business_account_id: Mapped[str] = mapped_column(String(64), default="")
    access_token_enc: Mapped[str] = mapped_column(Text, default="")
    app_secret_enc: Mapped[str] = mapped_column(Text, default="")
    verify_token: Mapped[str] = mapped_column(String(64), default="")
    api_version: Mapped[str] = mapped_column(String(10), default="v21.0")
    status: Mapped[str] = mapped_column(String(12), default="")  # "" | connected | error
    status_detail: Mapped[str] = mapped_column(Text, default="")
    status_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    disabled_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    monthly_cap_cents: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class WhatsAppPrice(db.Model):
    """The price of one message from ``effective_from`` on (domain/notify/billing.py)."""

    __tablename__ = "whatsapp_price"
    id: Mapped[int] = mapped_column(primary_key=True)
    effective_from: Mapped[datetime] = mapped_column(DateTime)
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="HKD")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (Index("ix_whatsapp_price_from", "effective_from"),)


class WhatsAppCharge(db.Model):
    """The billing ledger: one row per WhatsApp message. "reserved" before the API call
    (so a monthly cap can never be passed), "accepted" once the API took it; a refused
    message's reservation is deleted. Only accepted rows are billed."""

    __tablename__ = "whatsapp_charge"
    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_message_id: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(10))  # reserved | accepted
    reserved_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="HKD")
    provider_message_id: Mapped[str] = mapped_column(String(128), default="")

    __table_args__ = (
        UniqueConstraint("outbox_message_id", name="uq_whatsapp_charge_message"),
        Index("ix_whatsapp_charge_accepted", "accepted_at", "kind", "price_cents"),
        Index("ix_whatsapp_charge_reserved", "state", "reserved_at"),
        # The statement's GROUP BY kind reads this in kind order: no sort of the month.
        Index("ix_whatsapp_charge_kind", "kind", "accepted_at", "price_cents"),
    )


class WhatsAppStatus(db.Model):
    """A delivery status a webhook reported, kept whether or not its message is known
    yet (a webhook may arrive before the send's commit, or twice)."""

    __tablename__ = "whatsapp_status"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider_message_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(12))  # sent | delivered | read | failed
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime)
    error_code: Mapped[str] = mapped_column(String(20), default="")
    error_title: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("provider_message_id", "status", name="uq_whatsapp_status_message"),
    )
