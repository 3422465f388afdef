"""Customer side: product list, cart, checkout, the order status page (issue 3)."""

from flask import Blueprint

bp = Blueprint("storefront", __name__, url_prefix="/shop")
