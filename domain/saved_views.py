"""Saved views: a merchant's named search + filters + tab on the orders page."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from domain.db import db, write_transaction
from domain.errors import NotFound, ValidationError
from domain.i18n import L_
from domain.models import SavedView
from domain.search import OrderQuery
from domain.store import clean_text

MAX_VIEWS = 30


def canonical_query_string(raw: str) -> str:
    """Parse through OrderQuery so only known, valid arguments are kept (no page)."""
    query = OrderQuery.from_args(MultiDict(parse_qsl(raw or "", keep_blank_values=False)))
    if query.errors:
        raise query.errors[0]
    return urlencode(query.to_args(page=1), doseq=True)


def list_views(user_id: int) -> list[SavedView]:
    return list(db.session.scalars(select(SavedView).where(SavedView.user_id == user_id)
                                   .order_by(SavedView.name)))


def save_view(user_id: int, name: str, query_string: str) -> SavedView:
    """Save (or overwrite, by name) the current list as a named view."""
    name = clean_text(name, L_("View name"), max_len=80, required=True)
    canonical = canonical_query_string(query_string)
    with write_transaction() as session:
        view = session.scalar(select(SavedView).where(
            SavedView.user_id == user_id, func.lower(SavedView.name) == name.lower()))
        if view is None:
            count = session.scalar(select(func.count(SavedView.id)).where(
                SavedView.user_id == user_id))
            if count >= MAX_VIEWS:
                raise ValidationError("You can keep at most %(max)s saved views.", max=MAX_VIEWS)
            view = SavedView(user_id=user_id, name=name, query_string=canonical)
            session.add(view)
        view.name, view.query_string = name, canonical
    return view


def delete_view(user_id: int, view_id: int) -> None:
    with write_transaction() as session:
        view = session.get(SavedView, view_id)
        if view is None or view.user_id != user_id:
            raise NotFound("Saved view not found.")
        session.delete(view)
