"""Domain exceptions. Each message is written for the merchant or customer to read."""


class DomainError(Exception):
    """Base class: a refused action. ``str(exc)`` is safe to show to users."""


class InvalidTransition(DomainError):
    pass


class InsufficientStock(DomainError):
    def __init__(self, item_name: str, requested: int, available: int | None):
        self.item_name = item_name
        self.requested = requested
        self.available = available
        left = "none left" if not available else f"only {available} left"
        super().__init__(f"Not enough stock for {item_name}: {left}, {requested} requested.")


class ValidationError(DomainError):
    pass


class NotFound(DomainError):
    pass


class PlanRequired(DomainError):
    pass


class ResendLimit(DomainError):
    pass
