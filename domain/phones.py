"""Phone numbers as people type them (issue 7): one E.164 form per order.

A leaf module: it reads the store's settings only inside ``store_region``, so
the search text code and migrations can import it without the models.
"""

from __future__ import annotations

import unicodedata

import phonenumbers

# The store has no country setting; its time zone says where it is, and its
# currency when the zone is not one of these. Hong Kong otherwise (the
# merchants Shopdesk is made for).
_ZONE_REGION = {
    "Asia/Hong_Kong": "HK", "Asia/Macau": "MO", "Asia/Taipei": "TW", "Asia/Shanghai": "CN",
    "Asia/Chongqing": "CN", "Asia/Urumqi": "CN", "Asia/Singapore": "SG",
    "Asia/Kuala_Lumpur": "MY", "Asia/Tokyo": "JP", "Asia/Seoul": "KR", "Asia/Bangkok": "TH",
    "Asia/Manila": "PH", "Asia/Jakarta": "ID", "Asia/Ho_Chi_Minh": "VN",
    "Australia/Sydney": "AU", "Australia/Melbourne": "AU", "Pacific/Auckland": "NZ",
    "Europe/London": "GB", "America/New_York": "US", "America/Los_Angeles": "US",
    "America/Chicago": "US", "America/Toronto": "CA", "America/Vancouver": "CA",
}
_CURRENCY_REGION = {
    "HKD": "HK", "MOP": "MO", "TWD": "TW", "CNY": "CN", "SGD": "SG", "MYR": "MY",
    "JPY": "JP", "KRW": "KR", "THB": "TH", "PHP": "PH", "IDR": "ID", "VND": "VN",
    "AUD": "AU", "NZD": "NZ", "GBP": "GB", "USD": "US", "CAD": "CA",
}
DEFAULT_REGION = "HK"
MAX_PHONE = 40  # Order.customer_phone


def region_for(timezone: str | None, currency: str | None) -> str:
    """The country (ISO 3166 code) whose numbers may be typed without a country code."""
    return _ZONE_REGION.get(timezone or "") or _CURRENCY_REGION.get(currency or "") \
        or DEFAULT_REGION


def store_region() -> str:
    from domain.store import get_settings

    settings = get_settings()
    return region_for(settings.timezone, settings.currency)


def _parsed(text: str, region: str):
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def to_e164(raw: str | None, region: str) -> str:
    """``raw`` as E.164 ("+85297575358"), or "" when it holds no possible number.

    "9757 5358", "+852 9757 5358", "(852) 9757 5358" and "85297575358" all
    give the same answer in Hong Kong. A field holding two numbers gives the
    first one.
    """
    text = unicodedata.normalize("NFKC", raw or "")[:MAX_PHONE * 2]
    if not any(ch.isdigit() for ch in text):
        return ""
    number = _parsed(text, region)
    if number is None:
        for match in phonenumbers.PhoneNumberMatcher(text, region,
                                                     leniency=phonenumbers.Leniency.POSSIBLE):
            number = match.number
            break
    if number is None:
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def store_e164(raw: str | None) -> str:
    """The E.164 form of a customer's phone, read in the store's country: what
    every code path that sets ``Order.customer_phone`` also stores."""
    return to_e164(raw, store_region())


def national_digits(digits: str, region: str) -> str:
    """For a search made of a phone number's digits: the same number without
    its country code ("85297575358" -> "97575358"), or "" when the digits
    are no possible number."""
    if not 6 <= len(digits) <= 17:
        return ""
    number = _parsed(digits, region)
    if number is None and digits.startswith("00"):
        number = _parsed("+" + digits[2:], region)
    return str(number.national_number) if number is not None else ""
