"""Forms of the Backups settings page."""

from __future__ import annotations

from flask_wtf import FlaskForm


class BackupNowForm(FlaskForm):
    """A bare button: the form exists for its CSRF token."""
