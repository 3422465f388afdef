"""Rendering helpers: full page or one named block for htmx, template filters."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Flask, render_template, request
from jinja2_fragments.flask import render_block

from domain import status as status_rules
from domain.money import cents_to_input
from domain.search import SOURCES
from domain.status import DeliveryStatus, OrderStatus
from domain.store import get_settings


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


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    zone = ZoneInfo(get_settings().timezone)
    return value.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).strftime(fmt)


def register_template_helpers(app: Flask) -> None:
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(cents_to_input, "money_input")

    # Globals (not a context processor) so imported macros can see them too.
    app.jinja_env.globals.update(OrderStatus=OrderStatus, DeliveryStatus=DeliveryStatus,
                                 SOURCES=SOURCES, rules=status_rules)

    @app.context_processor
    def store_context():
        return {"store": get_settings()}
