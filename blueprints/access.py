"""Who may open a blueprint's pages: shared guards, so every owner-only area
refuses the same way (anonymous: the sign-in page; staff: 403)."""

from __future__ import annotations

from flask import Blueprint, abort
from flask_login import current_user, login_required


def owner_only(bp: Blueprint) -> None:
    """Every route of ``bp`` needs a signed-in owner."""

    @bp.before_request
    @login_required
    def require_owner():
        if not current_user.is_owner:
            abort(403)
