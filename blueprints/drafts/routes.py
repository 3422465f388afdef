"""Unpaid orders built on behalf of a customer (issue 3)."""

from flask import Blueprint

bp = Blueprint("drafts", __name__, url_prefix="/drafts")
