"""Translatable text in the domain, without Flask (DESIGN principle 11).

The domain never translates: it marks. A refusal carries an English message
id plus parameters (see domain.errors.DomainError), labels are message ids,
and the web layer (blueprints/i18n.py) or a job translates them into the
reader's language at the moment of reading. ``pybabel extract`` finds the
marked strings through the keywords in ``EXTRACT_KEYWORDS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

LOCALES = ("en", "zh_Hant_HK")
DEFAULT_LOCALE = "zh_Hant_HK"
# Shown in the language switcher, each in its own language.
LOCALE_NAMES = {"en": "English", "zh_Hant_HK": "繁體中文"}


class Label(str):
    """A message id used as a value: a field name, a status, a method kind.

    Interpolated into a translated message, it is translated first, so
    "%(field)s is required." reads "金額為必填項目。" rather than "Amount為必填".
    """

    __slots__ = ()


def N_(msgid: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return msgid


def Nn_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a plural message (singular, plural) for extraction; ngettext picks one where shown."""
    return singular, plural


def L_(msgid: str) -> Label:
    """Mark a label (a message id that travels as a parameter)."""
    return Label(msgid)


def clean_locale(value: str | None, default: str | None = None) -> str | None:
    """One of LOCALES for a user-supplied value ("zh-HK", "zh_Hant_HK", "en-GB"), else default."""
    if not value:
        return default
    text = str(value).strip().replace("-", "_").lower()
    for locale in LOCALES:
        if text == locale.lower():
            return locale
    if text.startswith("zh"):
        return "zh_Hant_HK"
    if text.startswith("en"):
        return "en"
    return default


# Every callable whose first argument is a message id. Each DomainError
# subclass is one, so ``raise ValidationError("... %(x)s ...", x=1)`` is found
# (a test checks that every subclass is listed here).
EXTRACT_KEYWORDS = {
    "_": None, "gettext": None, "lazy_gettext": None, "_l": None, "N_": None, "L_": None,
    "ngettext": (1, 2), "lazy_ngettext": (1, 2), "Nn_": (1, 2),
    "DomainError": None, "InvalidTransition": None, "ValidationError": None,
    "NotFound": None, "PlanRequired": None, "ResendLimit": None,
    "BackupError": None,
    "PaymentDeclined": None, "DeadlinePassed": None,
}


# Translations bound for a stretch of rendering in one language (a batch's
# email, see domain/notify/email.py): the template gettext installed in
# blueprints/i18n.py reads them here instead of looking the locale up through
# Flask's context on each of an email's couple of hundred words.
_BOUND: ContextVar = ContextVar("shopdesk_bound_translations", default=None)


def bound_translations():
    """The translations bound by ``bind_translations``, or None."""
    return _BOUND.get()


@contextmanager
def bind_translations(translations) -> Iterator:
    token = _BOUND.set(translations)
    try:
        yield translations
    finally:
        _BOUND.reset(token)
