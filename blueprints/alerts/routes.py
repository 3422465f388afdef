"""Live alerts in the desk: server-sent events, the polling fallback, the bell."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("alerts", __name__)
