"""Who did something: written into every history event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    type: str  # staff | customer | system
    id: int | None = None
    label: str = ""

    @classmethod
    def staff(cls, user) -> Actor:
        return cls("staff", user.id, user.label)

    @classmethod
    def customer(cls, name: str = "") -> Actor:
        return cls("customer", None, name or "Customer")


SYSTEM = Actor("system", None, "Shopdesk")
