"""Rendering helpers: full page or one named block for htmx, template filters."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, current_app, g, render_template, request
from flask_babel import gettext
from flask_login import current_user
from jinja2_fragments.flask import render_block
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError

from blueprints.i18n import Clock, current_locale, for_this_request
from domain import status as status_rules
from domain.money import cents_to_input
from domain.search import SOURCES, low_stock_count
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings

_UTC = ZoneInfo("UTC")


def is_htmx() -> bool:
    """An htmx request that wants a fragment. Boosted navigation and history
    restores (back button after htmx's cache missed) want the whole page."""
    headers = request.headers
    return (headers.get("HX-Request") == "true" and headers.get("HX-Boosted") != "true"
            and headers.get("HX-History-Restore-Request") != "true")


def render(template: str, block: str | list[str] | None = "content", **context) -> str:
    """The whole page, or for htmx requests just ``block`` (default: the page body)."""
    if block and is_htmx():
        if isinstance(block, list):
            from jinja2_fragments.flask import render_blocks

            return render_blocks(template, block, **context)
        return render_block(template, block, **context)
    return render_template(template, **context)


def local_time(value: datetime | None, fmt: str | None = None, *,
               now: datetime | None = None) -> str:
    """A stored (UTC) time in the store's time zone, read the same everywhere:
    "Today 22:40", "Yesterday 09:15", then "2026-11-26 20:24" (or ``fmt``)."""
    if value is None:
        return ""
    if now is not None:
        return Clock(now, gettext)(value, fmt)
    return for_this_request(("clock", current_locale(), get_settings().timezone),
                            lambda: Clock(datetime.now(_UTC), gettext))(value, fmt)


def desk_low_stock() -> int:
    """Variants low on stock, for the Products nav badge: once per request, on desk
    pages only (0 for customers and signed-out visitors, who see no nav)."""
    if "desk_low_stock" not in g:
        g.desk_low_stock = 0
        if current_user.is_authenticated and request.blueprint != "storefront" \
                and not request.path.startswith("/shop"):
            try:
                g.desk_low_stock = low_stock_count()
            except SQLAlchemyError:  # a badge must not take the page down
                from domain.db import db

                db.session.rollback()
    return g.desk_low_stock


def kept_fragment(template: str) -> Markup:
    """``template`` rendered once per language and kept for the app's life: for markup
    with nothing of the request in it (no user, token, order or count), only message
    ids and URLs of endpoints. The orders list's Print menu is the same on every page
    but took a tenth of the page's rendering. Rendered afresh while templates reload
    (development), so an edit shows at once."""
    app = current_app._get_current_object()
    if app.jinja_env.auto_reload:
        return Markup(render_template(template))
    kept = app.extensions.setdefault("shopdesk.kept_fragments", {})
    key = (template, current_locale())
    if key not in kept:
        kept[key] = Markup(render_template(template))
    return kept[key]


def register_template_helpers(app: Flask) -> None:
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(cents_to_input, "money_input")

    # Globals (not a context processor) so imported macros can see them too.
    app.jinja_env.globals.update(OrderStatus=OrderStatus, DeliveryStatus=DeliveryStatus,
                                 SOURCES=SOURCES, rules=status_rules,
                                 desk_low_stock=desk_low_stock, kept_fragment=kept_fragment)

    @app.context_processor
    def store_context():
        return {"store": get_settings()}
