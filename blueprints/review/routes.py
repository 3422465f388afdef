"""Payment-proof review queue (issue 3)."""

from flask import Blueprint

bp = Blueprint("review", __name__, url_prefix="/review")
