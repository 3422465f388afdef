"""Products in and out of spreadsheets (SPEC §11): parse a CSV or .xlsx upload,
preview what it would change row by row, apply it, and export the catalogue.

One row per variant. The SKU is the key: a row whose SKU exists updates that
variant, a new SKU adds one, so applying the same file twice changes nothing the
second time. Every field goes through domain/catalog_rules.py, the same rules
as the product editor. Stock moves only through domain/inventory.py (a ledger
row per change, reason "import").

Spreadsheets run text that starts with = + - @ as a formula. The export writes
such text with a leading apostrophe, and the import removes exactly that
escape, so an exported file re-imports unchanged; any other formula-looking
cell is refused (never evaluated: openpyxl reads formulas as their text).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from domain import catalog_rules as rules
from domain.actors import Actor

# The export is its own module; its columns and formula escape are what is read back here.
from domain.catalog_export import (  # noqa: F401  (export_* re-exported for the views)
    COLUMNS,
    ESCAPABLE,
    export_csv,
    export_filename,
    export_rows,
    export_xlsx,
)
from domain.catalog_parse import (  # noqa: F401  (re-exported: the views and tests read them here)
    HEADER_ALIASES,
    MAX_BYTES,
    MAX_ROWS,
    REQUIRED,
    ImportFile,
    Row,
    header_name,
    parse,
)
from domain.db import db, write_transaction
from domain.errors import ValidationError
from domain.i18n import L_
from domain.inventory import set_stock
from domain.models import Product, Variant, utcnow
from domain.money import cents_to_input

FIELD_LABELS = {"product": L_("Product"), "variant": L_("Variant"), "sku": L_("SKU"),
                "barcode": L_("Barcode"), "price": L_("Price"), "stock": L_("Stock"),
                "low_stock": L_("Low-stock level"), "description": L_("Description"),
                "archived": L_("Archived")}
YES = {"yes", "y", "true", "1", "是", "已封存"}
NO = {"", "no", "n", "false", "0", "否"}

CREATE, ADD, UPDATE, UNCHANGED, ERROR = "create", "add", "update", "unchanged", "error"
ACTIONS = (CREATE, ADD, UPDATE, UNCHANGED, ERROR)


@dataclass
class RowPlan:
    number: int
    values: dict[str, str]
    action: str = UNCHANGED
    errors: list[ValidationError] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)  # columns this row changes
    clean: dict = field(default_factory=dict)
    failed: set = field(default_factory=set)  # columns whose cell was refused
    variant_id: int | None = None
    target: object = None  # an existing product id, or ("new", name)


@dataclass
class Preview:
    rows: list[RowPlan]
    counts: Counter
    ignored: list[str] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return bool(self.counts[ERROR])

    @property
    def has_changes(self) -> bool:
        return any(self.counts[a] for a in (CREATE, ADD, UPDATE))


# ------------------------------------------------------------------ preview


def _archived(value: str) -> bool:
    text = value.strip().casefold()
    if text in YES:
        return True
    if text in NO:
        return False
    raise ValidationError("Archived must be yes or no.")


def _stock(value: str):
    # "不限" is how the desk writes "unlimited" in Chinese.
    return rules.clean_stock_field("" if value.strip() == "不限" else value)


CLEANERS = {"product": rules.clean_product_name, "variant": rules.clean_variant_name,
            "sku": rules.clean_sku, "barcode": rules.clean_barcode, "price": rules.clean_price,
            "stock": _stock, "low_stock": rules.clean_threshold,
            "description": rules.clean_description, "archived": _archived}
VARIANT_FIELDS = {"variant": "name", "barcode": "barcode", "price": "price_cents",
                  "stock": "stock", "low_stock": "low_stock_threshold"}
NEW_DEFAULTS = {"variant": "", "barcode": "", "stock": None, "low_stock": None,
                "description": "", "archived": False}


def _clean_row(row: Row, variants, products) -> RowPlan:
    plan = RowPlan(row.number, row.values)
    try:
        sku = rules.clean_sku(row.values.get("sku", ""))
    except ValidationError:
        sku = None
    existing = variants.get(sku) if sku else None
    for column, text in row.values.items():
        if column == "product" and not text.strip():
            continue  # may be left blank for an existing SKU; checked once the SKU is known
        if existing is not None and text == _current_text(column, existing, products):
            # What the store already holds (an export's own cell): kept as it is, even if
            # it predates today's rules (a legacy barcode), so a round trip never fails.
            plan.clean[column] = _current_value(column, existing, products)
            continue
        if column in row.formulas:
            plan.failed.add(column)
            plan.errors.append(ValidationError(
                "%(field)s starts with =, +, - or @ and would run as a formula in a "
                "spreadsheet; put an apostrophe (') in front to keep it as text.",
                field=FIELD_LABELS[column]))
            continue
        try:
            plan.clean[column] = CLEANERS[column](text)
        except ValidationError as exc:
            plan.failed.add(column)
            plan.errors.append(exc)
    return plan


def _current_value(column: str, variant, products):
    product = products[variant.product_id]
    if column == "product":
        return product.name
    if column == "description":
        return product.description or ""
    if column == "archived":
        return not product.active
    if column == "sku":
        return variant.sku.upper()
    return getattr(variant, VARIANT_FIELDS[column])


def _current_text(column: str, variant, products) -> str:
    """The stored value as the export writes it (before its formula escape)."""
    value = _current_value(column, variant, products)
    if column == "price":
        return cents_to_input(value)
    if column == "stock":
        return "unlimited" if value is None else str(value)
    if column == "low_stock":
        return "" if value is None else str(value)
    if column == "archived":
        return "yes" if value else "no"
    return value or ""


def _store_state():
    variants = {row.sku.upper(): row for row in db.session.execute(select(
        Variant.id, Variant.sku, Variant.product_id, Variant.name, Variant.barcode,
        Variant.price_cents, Variant.stock, Variant.low_stock_threshold, Variant.active))}
    products = {row.id: row for row in db.session.execute(select(
        Product.id, Product.name, Product.description, Product.active))}
    by_name = defaultdict(list)
    for product in products.values():
        by_name[product.name].append(product.id)
    return variants, products, by_name


def preview(data: ImportFile) -> Preview:
    """What applying ``data`` would do, row by row, with every row's reasons. Writes nothing."""
    variants, products, by_name = _store_state()
    plans = [_clean_row(row, variants, products) for row in data.rows]
    first_sku: dict[str, int] = {}
    for plan in plans:
        sku = plan.clean.get("sku")
        if sku is None:
            continue
        if sku in first_sku:
            plan.errors.append(ValidationError(
                "SKU %(sku)s is also on row %(row)s: each SKU may appear once.",
                sku=sku, row=first_sku[sku]))
            continue
        first_sku[sku] = plan.number
        existing = variants.get(sku)
        if existing is not None:
            plan.variant_id = existing.id
            if not existing.active:
                plan.errors.append(ValidationError(
                    "SKU %(sku)s belongs to an item removed from sale; use another SKU.",
                    sku=sku))
        elif "product" not in plan.clean and "product" not in plan.failed:
            try:
                rules.clean_product_name("")
            except ValidationError as exc:
                plan.errors.append(exc)
    _check_barcodes(plans, variants)
    _resolve_products(plans, variants, products, by_name)
    counts = Counter(plan.action for plan in plans)
    return Preview(plans, counts, data.ignored)


def _check_barcodes(plans: list[RowPlan], variants) -> None:
    """A barcode may belong to one SKU: compare every barcode as it will be after the
    import (the file's for its SKUs, the store's for the rest), so swapping two codes
    within one file is allowed."""
    final = {sku: v.barcode for sku, v in variants.items() if v.barcode}
    rows_of = {}
    for plan in plans:
        sku = plan.clean.get("sku")
        if sku is None or sku in rows_of:
            continue
        rows_of[sku] = plan.number
        if "barcode" in plan.clean:
            final[sku] = plan.clean["barcode"]
    # Who keeps a code: the variant holding it in the store if it keeps it, else
    # the file's first row with it; every other row with that code is refused.
    owner: dict[str, str] = {}
    for sku, v in variants.items():
        if v.barcode and final.get(sku) == v.barcode:
            owner.setdefault(v.barcode, sku)
    for plan in plans:
        code, sku = plan.clean.get("barcode"), plan.clean.get("sku")
        if not code or sku is None:
            continue
        other = owner.setdefault(code, sku)
        if other == sku:
            continue
        if other in rows_of:
            plan.errors.append(ValidationError(
                "Barcode %(code)s is also given to SKU %(sku)s on row %(row)s.",
                code=code, sku=other, row=rows_of[other]))
        else:
            plan.errors.append(ValidationError(
                "Barcode %(code)s is already used by SKU %(sku)s in the store.",
                code=code, sku=other))


def _resolve_products(plans, variants, products, by_name) -> None:
    """Which product each row belongs to, the product-level fields (name,
    description, archived: the first row of a product sets them) and each row's action."""
    by_file_name: dict[str, object] = {}
    first_of: dict[object, RowPlan] = {}
    for plan in plans:
        if plan.errors:  # not resolved: it must not lead its product's rows
            plan.action = ERROR
            continue
        existing = variants[plan.clean["sku"]] if plan.variant_id else None
        name = plan.clean.get("product")
        if existing is not None:
            target = existing.product_id
            name = name or products[target].name
        elif name in by_file_name:
            target = by_file_name[name]
        elif len(by_name.get(name, [])) > 1:
            plan.errors.append(ValidationError(
                "Several products are called %(name)s: add this variant in the product "
                "editor.", name=name))
            plan.action = ERROR
            continue
        else:
            target = by_name[name][0] if by_name.get(name) else ("new", name)
        by_file_name.setdefault(name, target)
        plan.target = target
        plan.clean.setdefault("product", name)
        lead = first_of.setdefault(target, plan)
        if lead is not plan:
            _same_as_lead(plan, lead)
        _set_action(plan, lead, existing, products)


def _same_as_lead(plan: RowPlan, lead: RowPlan) -> None:
    if plan.clean.get("product") != lead.clean.get("product"):
        plan.errors.append(ValidationError(
            "Row %(row)s calls this product %(name)s: every row of one product needs the "
            "same product name.", row=lead.number, name=lead.clean.get("product")))
    description = plan.clean.get("description")
    if description and description != lead.clean.get("description", description):
        plan.errors.append(ValidationError(
            "The description differs from row %(row)s of the same product: the first row's "
            "description is used, so leave it blank or the same here.", row=lead.number))
    archived = plan.clean.get("archived")
    if "archived" in plan.clean and "archived" in lead.clean and archived != lead.clean["archived"]:
        plan.errors.append(ValidationError(
            "Archived differs from row %(row)s of the same product.", row=lead.number))


def _set_action(plan: RowPlan, lead: RowPlan, existing, products) -> None:
    if plan.errors:
        plan.action = ERROR
        return
    if existing is None:
        plan.action = CREATE if isinstance(plan.target, tuple) and lead is plan else ADD
        return
    for column, attr in VARIANT_FIELDS.items():
        if column in plan.clean and plan.clean[column] != getattr(existing, attr):
            plan.changes.append(column)
    if lead is plan:
        product = products[plan.target]
        if plan.clean["product"] != product.name:
            plan.changes.append("product")
        if "description" in plan.clean and plan.clean["description"] != product.description:
            plan.changes.append("description")
        if "archived" in plan.clean and plan.clean["archived"] == product.active:
            plan.changes.append("archived")
    plan.action = UPDATE if plan.changes else UNCHANGED


# ------------------------------------------------------------------ apply


def apply(data: ImportFile, actor: Actor) -> Preview:
    """Apply the file in one transaction; returns the plan that was applied.

    Planned again under the write lock, so it acts on the store as it is now. A
    file with any row in error is refused whole (the preview listed them): a
    half-imported catalogue is harder to put right than a file."""
    with write_transaction() as session:
        plan = preview(data)
        if plan.has_errors:
            raise ValidationError(
                "%(num)s row has an error; nothing was imported.",
                plural="%(num)s rows have errors; nothing was imported.",
                count=plan.counts[ERROR])
        if not plan.has_changes:
            return plan
        rows = [row for row in plan.rows if row.action in (CREATE, ADD, UPDATE)]
        ids = [row.variant_id for row in rows if row.variant_id]
        loaded = {v.id: v for v in session.scalars(select(Variant).where(Variant.id.in_(ids)))}
        # Codes move first, so two variants swapping barcodes never share one mid-flush.
        for row in rows:
            if "barcode" in row.changes:
                loaded[row.variant_id].barcode = ""
        session.flush()
        made = _apply_products(session, rows)
        note = (data.filename or "")[:200]
        for row in rows:
            clean = row.clean
            if row.variant_id is None:
                variant = Variant(
                    product_id=made[row.target].id, sku=clean["sku"],
                    name=clean.get("variant", ""), barcode=clean.get("barcode", ""),
                    price_cents=clean["price"], stock=clean.get("stock"),
                    low_stock_threshold=clean.get("low_stock"))
                variant.opening_reason = "import"
                variant.opening_actor = actor
                session.add(variant)
                continue
            variant = loaded[row.variant_id]
            for column in row.changes:
                if column in VARIANT_FIELDS and column != "stock":
                    setattr(variant, VARIANT_FIELDS[column], clean[column])
        session.flush()
        for row in rows:
            if row.variant_id and "stock" in row.changes:
                set_stock(row.variant_id, row.clean["stock"], reason="import", note=note,
                          actor=actor)
        session.expire_all()  # set_stock wrote with UPDATE statements
        return plan


def _apply_products(session, rows: list[RowPlan]) -> dict:
    made = {}
    for row in rows:
        clean = row.clean
        if row.action == CREATE:
            archived = clean.get("archived", False)
            made[row.target] = product = Product(
                name=clean["product"], description=clean.get("description", ""),
                active=not archived, archived_at=utcnow() if archived else None)
            session.add(product)
        elif row.target not in made:
            made[row.target] = session.get(Product, row.target)
        product = made[row.target]
        if row.action == UPDATE:
            if "product" in row.changes:
                product.name = clean["product"]
            if "description" in row.changes:
                product.description = clean["description"]
            if "archived" in row.changes:
                product.active = not clean["archived"]
                product.archived_at = utcnow() if clean["archived"] else None
    session.flush()
    return made
