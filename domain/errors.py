"""Domain exceptions. Each message is written for the merchant or customer to read.

A refusal carries an English message id with ``%(name)s`` parameters, never a
sentence built by concatenation: the web layer translates the id and then
fills in the parameters (blueprints/i18n.py ``translate_error``), so the same
refusal reads right in every language. ``str(exc)`` is the English text, for
logs and the command line.
"""

from __future__ import annotations

from domain.i18n import N_, Label


class DomainError(Exception):
    """Base class: a refused action. ``str(exc)`` is safe to show to users.

    ``plural`` and ``count`` make a message with a number in it: the
    translation picks the plural form for ``count`` (also available as
    ``%(num)s``).
    """

    def __init__(self, msgid: str = "", /, *, plural: str | None = None,
                 count: int | None = None, **params):
        self.msgid = msgid
        self.plural = plural
        self.count = count
        self.params = params
        super().__init__(msgid)

    def render(self, gettext=None, ngettext=None) -> str:
        """The message, translated by the given functions (identity when None)."""
        gettext = gettext or (lambda s: s)
        params = {k: (gettext(v) if isinstance(v, Label) else v) for k, v in self.params.items()}
        if self.plural is not None and self.count is not None:
            params.setdefault("num", self.count)
            template = (ngettext(self.msgid, self.plural, self.count) if ngettext
                        else (self.msgid if self.count == 1 else self.plural))
        else:
            template = gettext(self.msgid)
        try:
            return template % params if params or "%(" in template else template
        except (KeyError, ValueError, TypeError):
            # A broken translation must never hide the refusal itself.
            return self.msgid % params if params else self.msgid

    def __str__(self) -> str:
        return self.render()


class InvalidTransition(DomainError):
    pass


class InsufficientStock(DomainError):
    def __init__(self, item_name: str, requested: int, available: int | None):
        self.item_name = item_name
        self.requested = requested
        self.available = available
        if not available:
            super().__init__(N_("Not enough stock for %(item)s: none left, %(requested)s requested."),
                             item=item_name, requested=requested)
        else:
            super().__init__(
                N_("Not enough stock for %(item)s: only %(available)s left, %(requested)s requested."),
                item=item_name, requested=requested, available=available)


class ValidationError(DomainError):
    pass


class NotFound(DomainError):
    pass


class PlanRequired(DomainError):
    pass


class ResendLimit(DomainError):
    pass
