"""Background jobs on RQ (issue 3). ``init_app`` wires config and CLI commands."""

from flask import Flask


def init_app(app: Flask) -> None:
    """Register job config and the `flask worker` command (filled in by issue 3)."""
