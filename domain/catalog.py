"""Products and their variants: save, archive, search, low-stock count (issue 13).

Field rules live in domain/catalog_rules.py (shared with the import); stock
changes go through domain/inventory.py so each one is a ledger row. The editor
never overwrites a tracked variant's count: that is what adjustments are for.
A new variant's count is its "opening" ledger row; switching a variant between
unlimited and tracked is an inventory.set_stock move ("tracking").
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from domain import catalog_rules as rules
from domain import inventory
from domain.actors import Actor
from domain.db import db, write_transaction
from domain.errors import NotFound, ValidationError
from domain.i18n import N_
from domain.models import OrderLine, Product, Variant, utcnow
from domain.search_text import fold

MAX_VARIANTS = 100
SEARCH_MAX = 100


@dataclass
class VariantInput:
    """One row of the editor as typed. ``id`` None: a new variant. ``stock``
    blank or "unlimited" means unlimited; for an existing tracked variant only
    whether it is tracked counts, never the number."""

    id: int | None
    name: str = ""
    sku: str = ""
    barcode: str = ""
    price: str | int = ""
    stock: str | int | None = ""
    low_stock_threshold: str | int | None = ""


class ProductInvalid(ValidationError):
    """The form has mistakes. ``errors`` maps a field ("name", "variants-2-sku",
    "variants" for the table as a whole) to its refusal, so each is shown next
    to its field; the message itself is a summary."""

    def __init__(self, errors: dict[str, ValidationError]):
        super().__init__(N_("Check the fields marked below: nothing was saved."))
        self.errors = errors


@dataclass
class _Clean:
    id: int | None
    name: str
    sku: str
    barcode: str
    price_cents: int
    stock: int | None
    threshold: int | None


def _field(errors: dict, key: str, fn, value):
    try:
        return fn(value)
    except ValidationError as exc:
        errors.setdefault(key, exc)
        return None


def _clean_variants(variants: list[VariantInput], errors: dict) -> list[_Clean]:
    if not variants:
        errors["variants"] = ValidationError("A product needs at least one variant.")
        return []
    if len(variants) > MAX_VARIANTS:
        errors["variants"] = ValidationError("A product can have at most %(max)s variants.",
                                             max=MAX_VARIANTS)
        return []
    cleaned, names, skus, barcodes = [], {}, {}, {}
    for i, row in enumerate(variants):
        key = f"variants-{i}-"
        price = _field(errors, key + "price", rules.clean_price, row.price)
        item = _Clean(
            id=row.id,
            name=_field(errors, key + "name", rules.clean_variant_name, row.name),
            sku=_field(errors, key + "sku", rules.clean_sku, row.sku),
            barcode=_field(errors, key + "barcode", rules.clean_barcode, row.barcode),
            price_cents=price,
            stock=_field(errors, key + "stock", rules.clean_stock_field,
                         "" if row.stock is None else row.stock),
            threshold=_field(errors, key + "low_stock_threshold", rules.clean_threshold,
                             "" if row.low_stock_threshold is None else row.low_stock_threshold))
        if item.name is not None:
            folded = fold(item.name)
            if folded in names:
                errors.setdefault(key + "name", ValidationError(
                    "Two variants are called “%(name)s”: give each its own name.",
                    name=item.name or "—"))
            names[folded] = i
        if item.sku:
            if item.sku in skus:
                errors.setdefault(key + "sku", ValidationError(
                    "SKU %(sku)s is used twice in this product.", sku=item.sku))
            skus[item.sku] = i
        if item.barcode:
            if item.barcode in barcodes:
                errors.setdefault(key + "barcode", ValidationError(
                    "Barcode %(code)s is used twice in this product.", code=item.barcode))
            barcodes[item.barcode] = i
        cleaned.append(item)
    return cleaned


def _clashes(cleaned: list[_Clean], errors: dict) -> None:
    """SKU / barcode already held by a variant outside this save (per row, so the
    refusal lands next to the right field)."""
    for i, item in enumerate(cleaned):
        try:
            rules.find_clashes({item.sku: item.id} if item.sku else {},
                               {item.barcode: item.id} if item.barcode else {})
        except ValidationError as exc:
            field = "sku" if "SKU" in exc.msgid else "barcode"
            errors.setdefault(f"variants-{i}-{field}", exc)


def _referenced(variant_id: int) -> bool:
    return db.session.scalar(select(exists().where(OrderLine.variant_id == variant_id)))


def save_product(product_id: int | None, *, name, description="",
                 variants: list[VariantInput], actor: Actor) -> Product:
    """Create (``product_id`` None) or update a product with its variants, in one
    write transaction. Raises ProductInvalid (a ValidationError) with every
    mistake, NotFound for an unknown product or a variant of another product."""
    with write_transaction() as session:
        product = None
        if product_id is not None:
            product = session.get(Product, product_id)
            if product is None:
                raise NotFound("Product %(id)s no longer exists.", id=product_id)
        errors: dict[str, ValidationError] = {}
        clean_name = _field(errors, "name", rules.clean_product_name, name)
        clean_desc = _field(errors, "description", rules.clean_description, description)
        cleaned = _clean_variants(list(variants), errors)
        current = {v.id: v for v in product.variants} if product else {}
        for i, item in enumerate(cleaned):
            if item.id is not None and item.id not in current:
                raise NotFound("Item %(id)s no longer exists.", id=item.id)
            if item.id is not None and not current[item.id].active:
                errors.setdefault(f"variants-{i}-name", ValidationError(
                    "This variant was removed; add it as a new one."))
        if not errors:
            _clashes(cleaned, errors)
        if errors:
            raise ProductInvalid(errors)

        if product is None:
            product = Product(name=clean_name, description=clean_desc, active=True)
            session.add(product)
            session.flush()
        else:
            product.name, product.description = clean_name, clean_desc
        kept = {item.id for item in cleaned if item.id is not None}
        for variant_id, variant in current.items():
            if variant_id not in kept and variant.active:
                _remove_variant(variant)
        try:
            # Updates first (a SKU may move from one row to another only through
            # a removal, which was flushed above), then the new rows.
            for item in cleaned:
                if item.id is None:
                    continue
                variant = current[item.id]
                variant.name, variant.sku, variant.barcode = item.name, item.sku, item.barcode
                variant.price_cents, variant.low_stock_threshold = item.price_cents, item.threshold
                session.flush()
                if (variant.stock is None) != (item.stock is None):
                    inventory.set_stock(variant.id, item.stock, actor=actor)
                    session.refresh(variant, ["stock"])
            for item in cleaned:
                if item.id is not None:
                    continue
                variant = Variant(product_id=product.id, name=item.name, sku=item.sku,
                                  barcode=item.barcode, price_cents=item.price_cents,
                                  stock=item.stock, low_stock_threshold=item.threshold,
                                  active=True)
                variant.opening_actor = actor
                session.add(variant)
                session.flush()
        except IntegrityError as exc:
            # Another save took the SKU or barcode between our check and our write.
            raise ValidationError("That SKU or barcode was just taken by another item; "
                                  "check them and save again.") from exc
        session.refresh(product)
        return product


def _remove_variant(variant: Variant) -> None:
    """Gone from the product: deleted with its ledger when no order ever had it,
    else kept (inactive) so old orders still point at it."""
    if _referenced(variant.id):
        variant.active = False
    else:
        db.session.execute(delete(Variant).where(Variant.id == variant.id))
        db.session.expire(variant.product, ["variants"])
    db.session.flush()


def _set_archived(product_id: int, archived: bool) -> Product:
    with write_transaction() as session:
        product = session.get(Product, product_id)
        if product is None:
            raise NotFound("Product %(id)s no longer exists.", id=product_id)
        if product.active == (not archived):
            return product
        product.active = not archived
        product.archived_at = utcnow() if archived else None
        return product


def archive_product(product_id: int) -> Product:
    """Take a product off sale. Its past orders keep their lines."""
    return _set_archived(product_id, True)


def unarchive_product(product_id: int) -> Product:
    return _set_archived(product_id, False)


def get_product(product_id: int) -> Product:
    product = db.session.scalar(select(Product).where(Product.id == product_id)
                                .options(selectinload(Product.variants)))
    if product is None:
        raise NotFound("Product %(id)s no longer exists.", id=product_id)
    return product


@dataclass
class ProductPage:
    items: list[Product]
    total: int
    offset: int
    limit: int

    @property
    def has_prev(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + self.limit < self.total


def search_products(q: str = "", *, include_archived: bool = False, limit: int = 50,
                    offset: int = 0, low_stock_only: bool = False) -> ProductPage:
    """Products whose name, variant name, SKU or barcode contains ``q``, by name.

    Both sides go through search_text.fold (the orders search's form: full-width
    and traditional/simplified folded, case-insensitive), so "曲奇" finds "曲奇禮盒"
    and "ｂ-００１" finds B-001. The match runs over a narrow projection of the
    product and variant tables (one row per variant, no joins loaded) in Python:
    a store has thousands of products, not millions, and fold is not a SQL function
    on every backend. Only the page asked for is loaded as objects.
    """
    limit = max(1, min(int(limit), 200))
    offset = max(0, int(offset))
    needle = fold(str(q or "")[:SEARCH_MAX])
    base = select(Product.id)
    if not include_archived:
        base = base.where(Product.active)
    low = true()
    if low_stock_only:  # products with a variant at or under its low-stock level
        low = Product.id.in_(select(Variant.product_id).where(
            Variant.id.in_(inventory.low_stock_variant_ids())))
        base = base.where(low)
    if needle:
        rows = db.session.execute(
            select(Product.id, Product.name, Variant.name, Variant.sku, Variant.barcode)
            .outerjoin(Variant, Variant.product_id == Product.id)
            .where(true() if include_archived else Product.active, low)
            .order_by(Product.name, Product.id)).all()
        ids: list[int] = []
        seen = set()
        for pid, *texts in rows:
            if pid in seen:
                continue
            if any(needle in fold(t) for t in texts if t):
                seen.add(pid)
                ids.append(pid)
        total, page_ids = len(ids), ids[offset:offset + limit]
    else:
        total = db.session.scalar(select(func.count()).select_from(base.subquery()))
        page_ids = list(db.session.scalars(
            base.order_by(Product.name, Product.id).limit(limit).offset(offset)))
    order = {pid: i for i, pid in enumerate(page_ids)}
    items = sorted(db.session.scalars(
        select(Product).where(Product.id.in_(page_ids)).options(selectinload(Product.variants))),
        key=lambda p: order[p.id]) if page_ids else []
    return ProductPage(items=items, total=total, offset=offset, limit=limit)


low_stock_count = inventory.low_stock_count  # the desk's badge and the list's heading


def sellable_variants(q: str, *, limit: int = 8) -> list[Variant]:
    """The variants on sale (product not archived, variant not removed) of the first
    ``limit`` products whose name, SKU or barcode matches ``q``: what an order editor
    (modify order, the draft builder) offers to add."""
    q = str(q or "").strip()[:SEARCH_MAX]
    if not q:
        return []
    page = search_products(q, limit=limit)
    return [v for p in page.items for v in p.variants if v.active]
