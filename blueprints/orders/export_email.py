"""Export to email (SPEC §7): the export runs in the background and is mailed."""

from __future__ import annotations

from blueprints.orders.routes import bp  # noqa: F401  (routes are added to the orders blueprint)
