"""The Mail page (owner only): every message Shopdesk wrote, with a rendered preview."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("mail", __name__)
