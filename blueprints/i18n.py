"""Languages (issue 8): who reads which language, and how money and dates read in it.

* Staff read the language in their profile, else the store's language.
* Customers pick one in the store (remembered in the session); before they
  pick, the browser's Accept-Language decides, else the store's language.
* Anything about one order (its page for the customer, later its emails and
  papers) can be rendered in the language the order was placed in, with
  ``flask_babel.force_locale(order_locale(order))``.

Domain refusals arrive as message ids with parameters and are translated
here by ``translate_error``; labels (statuses, field names) are message ids
translated where they are shown.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel import support
from babel.dates import TIMEDELTA_UNITS, get_timezone_name
from babel.dates import format_timedelta as babel_timedelta
from babel.numbers import format_currency as babel_currency
from flask import (
    Blueprint,
    Flask,
    abort,
    g,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import (
    Babel,
    get_locale,
    get_translations,
    gettext,
    ngettext,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from jinja2 import pass_eval_context
from markupsafe import Markup
from wtforms.i18n import messages_path

from domain.errors import DomainError
from domain.i18n import DEFAULT_LOCALE, LOCALE_NAMES, LOCALES, bound_translations, clean_locale
from domain.store import get_settings

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
SHOP_SESSION_KEY = "shop_locale"

bp = Blueprint("i18n", __name__)
babel = Babel()


def store_locale() -> str:
    return clean_locale(getattr(get_settings(), "language", None), DEFAULT_LOCALE)


def _browser_locale() -> str | None:
    best = request.accept_languages.best_match(["en", "zh-HK", "zh-TW", "zh", "zh-Hant", "zh-CN"])
    return clean_locale(best)


def _is_customer_page() -> bool:
    return request.blueprint == "storefront" or request.path.startswith("/shop")


def select_locale() -> str:
    """The reader's language for this request (Flask-Babel's locale selector)."""
    forced = g.get("page_locale")
    if forced:
        return forced
    if _is_customer_page():
        return (clean_locale(session.get(SHOP_SESSION_KEY)) or _browser_locale()
                or store_locale())
    if current_user and current_user.is_authenticated:
        return clean_locale(getattr(current_user, "locale", None)) or store_locale()
    return _browser_locale() or store_locale()


def select_timezone() -> str:
    return get_settings().timezone


def order_locale(order) -> str:
    """The language an order was placed in (older orders: the store's)."""
    return clean_locale(getattr(order, "locale", None)) or store_locale()


def use_order_locale(order) -> None:
    """Render this customer page in the order's language, unless the customer
    chose one in the store themselves."""
    if not clean_locale(session.get(SHOP_SESSION_KEY)):
        g.page_locale = order_locale(order)
        from flask_babel import refresh

        refresh()


def translate_error(exc: DomainError) -> str:
    """A domain refusal in the reader's language."""
    if isinstance(exc, DomainError):
        return exc.render(gettext, ngettext)
    return str(exc)


def stored_text(text: str | None) -> str:
    """Text kept in the data that Shopdesk may have written itself: built-in method
    names and instructions (marked N_ in domain/store.py), the expiry reason. Those
    are message ids and read in the reader's language; what a merchant or customer
    typed has no message id and comes back as typed."""
    return gettext(text) if text else ""


method_label = stored_text  # a method's name or instructions


def device_label(device: str | None) -> str:
    """A signed-in device as stored by domain.sessions.describe_device ("Chrome on
    Android", "Unknown browser", "curl/8.5"), in the reader's language."""
    from domain.sessions import UNKNOWN_DEVICE

    if not device or device == UNKNOWN_DEVICE:
        return gettext(UNKNOWN_DEVICE)
    browser, on, system = device.partition(" on ")
    if on and browser and system:
        return gettext("%(browser)s on %(system)s", browser=browser, system=system)
    return device


def current_locale() -> str:
    """The reader's language now ("en", "zh_Hant_HK"). Read from Flask-Babel's locale
    object for the request, its name kept beside it (a page asks ~140 times: each
    money, time and URL, and get_locale() walks three context proxies, str() builds
    the name anew)."""
    return _kept_for_locale("shopdesk_locale_name", lambda: str(get_locale() or DEFAULT_LOCALE))


def _kept_for_locale(name: str, make):
    """``make()``, kept for the request beside Flask-Babel's locale object (its
    ``name`` attribute) and keyed by that object, so force_locale (which swaps it) and
    refresh() (which drops it) are followed exactly. Before the locale is looked up
    (or outside a request) it is made each time."""
    state = getattr(g, "_flask_babel", None) if g else None
    locale = getattr(state, "babel_locale", None)
    if locale is None:
        return make()
    kept = getattr(state, name, None)
    if kept is not None and kept[0] is locale:
        return kept[1]
    value = make()
    if getattr(state, "babel_locale", None) is locale:  # not changed by make() itself
        setattr(state, name, (locale, value))
    return value


def html_lang() -> str:
    """The BCP 47 tag for <html lang>: en, zh-Hant-HK."""
    return current_locale().replace("_", "-")


# ------------------------------------------------------------------ formatting


_SAMPLE = Decimal("1234567.89")
_SAMPLE_TEXT = "1,234,567.89"


@lru_cache(maxsize=32)
def _money_shape(locale: str, currency: str) -> tuple[str, str, str, str] | None:
    """(prefix, suffix, negative prefix, negative suffix) of Babel's own format for this
    locale and currency when it is the plain "1,234,567.89" shape, else None (then each
    amount goes through Babel). Asked of Babel once, so the figures are Babel's."""
    plain = babel_currency(_SAMPLE, currency, locale=locale, currency_digits=True)
    negative = babel_currency(-_SAMPLE, currency, locale=locale, currency_digits=True)
    if plain.count(_SAMPLE_TEXT) != 1 or negative.count(_SAMPLE_TEXT) != 1:
        return None
    return (*plain.split(_SAMPLE_TEXT), *negative.split(_SAMPLE_TEXT))


def money_formatter(locale: str, currency: str):
    """cents -> 'HK$1,234.50', exactly as blueprints.i18n.money writes it."""
    shape = _money_shape(locale, currency)

    def money(cents: int | None) -> str:
        if cents is None:
            return ""
        if shape is None:
            return babel_currency(Decimal(int(cents)) / 100, currency, locale=locale,
                                  currency_digits=True)
        whole, part = divmod(abs(int(cents)), 100)
        digits = f"{whole:,}.{part:02d}"
        prefix, suffix = (shape[2], shape[3]) if cents < 0 else (shape[0], shape[1])
        return f"{prefix}{digits}{suffix}"

    return money


def money(cents: int | None, currency: str | None = None) -> str:
    """12345 -> 'HK$123.45' in the reader's locale (Babel's currency patterns)."""
    if cents is None:
        return ""
    locale, currency = current_locale(), currency or get_settings().currency
    return for_this_request(("money", locale, currency),
                            lambda: money_formatter(locale, currency))(cents)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))


def timezone_name() -> str:
    """The store's time zone in words: 'Hong Kong Time', '香港時間'."""
    return get_timezone_name(ZoneInfo(get_settings().timezone), "long", locale=current_locale())


def zone_abbreviation(local: datetime) -> str:
    """The zone's short name at that moment: 'HKT'; zones whose data has no letters
    ('+08') read as 'UTC+8' / 'UTC+5:30', never a bare offset."""
    name = local.tzname() or ""
    if name and name[0] not in "+-":
        return name
    offset = local.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def deadline(value: datetime | None) -> str:
    """A stated time with its zone, in the store's time zone: '2026-11-30 23:59 HKT'.

    The same digits in every language (the spec's format; unambiguous in both)."""
    if value is None:
        return ""
    local = _aware(value).astimezone(ZoneInfo(get_settings().timezone))
    return f"{local:%Y-%m-%d %H:%M} {zone_abbreviation(local)}"


AGO_THRESHOLD = 0.9  # Babel's default is 0.85: "in 0.9 days" reads as a day, not 22 hours


class RelativeTime:
    """"3 days ago" as Babel's format_timedelta words it, from one instant ``now``,
    asked of Babel once per distinct answer: a page of 50 rows or 30 history events
    says a few different things. The words depend only on the direction, the unit and
    the rounded number, which this finds exactly as Babel does (TIMEDELTA_UNITS)."""

    def __init__(self, now: datetime, locale):
        self.now, self.locale, self.said = _aware(now), locale, {}

    def __call__(self, when: datetime) -> str:
        delta = _aware(when) - self.now
        seconds = delta.total_seconds()
        for unit, per in TIMEDELTA_UNITS:
            value = abs(seconds) / per
            if value >= AGO_THRESHOLD or unit == "second":
                if unit == "second" and value > 0:
                    value = max(1, value)
                key = (seconds >= 0, unit, int(round(value)))
                break
        if key not in self.said:
            self.said[key] = babel_timedelta(delta, add_direction=True, threshold=AGO_THRESHOLD,
                                             locale=self.locale)
        return self.said[key]


class Clock:
    """A stored (UTC) time in the store's time zone, from one instant ``now``: "Today
    22:40", "Yesterday 09:15", then "2026-11-26 20:24" (or ``fmt``). The zone, today and
    the two words are looked up once, for a page's dozens of times; ``gettext`` is the
    caller's (Flask-Babel's, or the list's translations fetched once)."""

    def __init__(self, now: datetime, gettext):
        self.zone = ZoneInfo(get_settings().timezone)
        self.today = _aware(now).astimezone(self.zone).date()
        self.yesterday = self.today - timedelta(days=1)
        self.today_text, self.yesterday_text = gettext("Today %(time)s"), gettext("Yesterday %(time)s")

    def __call__(self, value: datetime, fmt: str | None = None) -> str:
        local = _aware(value).astimezone(self.zone)
        if fmt:
            return local.strftime(fmt)
        day = local.date()
        if day == self.today:
            return self.today_text % {"time": f"{local:%H:%M}"}
        if day == self.yesterday:
            return self.yesterday_text % {"time": f"{local:%H:%M}"}
        return f"{local:%Y-%m-%d %H:%M}"


def for_this_request(key, make):
    """``make()``, kept for the rest of this request (a page's dozens of times and
    amounts look up the language, the zone and today once). Outside a request (a job
    rendering an email or a PDF) it is made each time: nothing outlives its moment."""
    if not has_request_context():
        return make()
    kept = g.get("_i18n_kept")
    if kept is None:
        kept = g._i18n_kept = {}
    if key not in kept:
        kept[key] = make()
    return kept[key]


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """'3 hours ago' / '3 小時前'; on a page, every one from the same instant."""
    if value is None:
        return ""
    locale = get_locale()
    if now is not None:
        return RelativeTime(now, locale)(value)
    teller = for_this_request(("ago", str(locale)), lambda: RelativeTime(
        datetime.now(ZoneInfo("UTC")), locale))
    return teller(value)


# ------------------------------------------------------------------ switching


class LanguageForm(FlaskForm):
    """CSRF-only: the locale and the page to return to come as plain fields."""


def _safe_next(target: str | None, fallback: str) -> str:
    if not target:
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


@bp.post("/language")
def choose_language():
    """A customer's language switch on the store pages, kept in their session."""
    if not LanguageForm().validate_on_submit():
        abort(400)
    locale = clean_locale(request.form.get("locale"))
    if locale is None:
        abort(400)
    session[SHOP_SESSION_KEY] = locale
    return redirect(_safe_next(request.form.get("next"), url_for("storefront.index")))


def _translations():
    """The translations to use now: bound ones (an email or PDF being rendered), else the
    request's. Kept for the request beside Flask-Babel's locale object, so the ~200
    strings of a desk page don't each walk Flask-Babel's lookups (issue 14); keyed by
    that object, so force_locale (which swaps it) and refresh() (which drops it) are
    followed exactly."""
    bound = bound_translations()
    if bound is not None:
        return bound
    return _kept_for_locale("shopdesk_translations", get_translations)


def current_translations():
    """The translations a render should use now (bound ones first): fetched once by
    code that translates many strings in a row (blueprints/orders/rows.py)."""
    return _translations()


@lru_cache(maxsize=16)
def _wtforms_catalog(locale: str):
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class _WTFormsTranslations:
    """WTForms' own messages ("Not a valid integer value.") in the reader's language.

    Flask-WTF loads that catalog from disk once per request (babel's
    Translations.load: a few milliseconds, on every page with a form); this reads
    the language at each call, so a page that switches to its order's language
    (use_order_locale) still gets it, from a catalog loaded once per process."""

    def ugettext(self, string):
        return _wtforms_catalog(current_locale()).ugettext(string)

    def ungettext(self, singular, plural, n):
        return _wtforms_catalog(current_locale()).ungettext(singular, plural, n)


WTFORMS_TRANSLATIONS = _WTFormsTranslations()


def _share_wtforms_translations() -> None:
    request.wtforms_translations = WTFORMS_TRANSLATIONS  # read by flask_wtf.i18n


@pass_eval_context
def _template_gettext(eval_ctx, string: str, /, **variables):
    """A template's ``_()``: what Jinja's newstyle gettext returns (jinja2.ext
    _make_new_gettext: Markup under autoescape, its arguments escaped into it, always
    a %-format), in one call instead of three. A desk page says ~140 strings; Jinja's
    alias resolved the name and went through two context calls for each (issue 14)."""
    rv = _translations().ugettext(string)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    # Without arguments and without a "%", formatting would give the string itself.
    return rv % variables if variables or "%" in rv else rv


@pass_eval_context
def _template_ngettext(eval_ctx, singular: str, plural: str, n: int, /, **variables):
    """A template's ``ngettext()``, as Jinja's newstyle one (``num`` is a variable too,
    unless given; positional-only parameters leave every name free for variables)."""
    variables.setdefault("num", n)
    rv = _translations().ungettext(singular, plural, n)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


def init_i18n(app: Flask) -> None:
    app.before_request(_share_wtforms_translations)
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    # Flask-Babel's own template gettext, except that translations bound for a
    # render (domain.i18n.bind_translations) are used as they are.
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
        newstyle=True)
    # ``_`` and ``ngettext`` called straight (see _template_gettext): the same words.
    app.jinja_env.globals.update(_=_template_gettext, gettext=_template_gettext,
                                 ngettext=_template_ngettext)
    app.register_blueprint(bp)
    app.add_template_filter(money, "money")
    app.add_template_filter(deadline, "deadline")
    app.add_template_filter(ago, "ago")
    app.jinja_env.globals.update(
        LOCALES=LOCALES, LOCALE_NAMES=LOCALE_NAMES, current_locale=current_locale,
        html_lang=html_lang, timezone_name=timezone_name, translate_error=translate_error,
        method_label=method_label, stored_text=stored_text, device_label=device_label)
