"""Forms of the products pages. Each mutation is a FlaskForm (so it carries CSRF);
the variants table is read by ``variant_rows`` from the posted fields, because
rows come and go in the browser. The rules themselves are domain/catalog.py's."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from domain.catalog import MAX_VARIANTS, VariantInput

ROW_FIELDS = ("id", "name", "sku", "barcode", "price", "stock", "low_stock_threshold")
_ROW_KEY = re.compile(r"^variants-(\d{1,6})-([a-z_]+)$")


class ConfirmForm(FlaskForm):
    """A bare button (archive, unarchive): only the CSRF token."""


class ProductForm(FlaskForm):
    # Lengths are the domain's to refuse (with the field named); these are only the
    # form's carriers, kept as typed when the save is refused.
    name = StringField(_l("Product name"))
    description = TextAreaField(_l("Description"))


class AdjustForm(FlaskForm):
    delta = StringField(_l("Change"))
    note = StringField(_l("Reason"))


def variant_rows(form) -> list[dict]:
    """The variants table as typed: one dict per row (in the order shown), rows the
    merchant ticked "remove" and rows left wholly blank left out. Values stay
    strings; ``id`` is an int or None."""
    rows: dict[int, dict] = {}
    for key in form:
        match = _ROW_KEY.match(key)
        if match and (match.group(2) in ROW_FIELDS or match.group(2) in ("remove", "unlimited")):
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = form.get(key, "")
        if len(rows) > MAX_VARIANTS + 1:
            break
    out = []
    for index in sorted(rows):
        row = rows[index]
        raw_id = row.get("id", "")
        row["id"] = int(raw_id) if raw_id.isdigit() and len(raw_id) <= 9 else None
        row["index"] = index
        if row.get("remove"):
            continue
        typed = [row.get(f, "").strip() for f in ROW_FIELDS if f not in ("id", "stock")]
        if row["id"] is None and not any(typed) and not row.get("stock", "").strip():
            continue  # the spare blank row
        if row.get("unlimited"):
            row["stock"] = "unlimited"
        out.append(row)
    return out


def to_inputs(rows: list[dict]) -> list[VariantInput]:
    return [VariantInput(id=row["id"], **{f: row.get(f, "") for f in ROW_FIELDS if f != "id"})
            for row in rows]
