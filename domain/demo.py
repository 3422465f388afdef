"""A realistic, deterministic demo store (``flask seed-demo``).

Historical orders are written with bulk INSERTs rather than through the
lifecycle actions: replaying 100,000 orders action by action would take many
minutes, and what is written here is history (each order carries the events
its status implies), not a live status change. Live stock is set directly as
the store's current stock. Orders waiting for their proof to be confirmed get
a generated transfer receipt, stored like an upload (:mod:`domain.demo_receipts`).

Rows get explicit ids (an order's number is made from its id), so on
PostgreSQL every id sequence is moved past the seeded rows afterwards
(:func:`sync_id_sequences`); otherwise the next checkout would be handed an
id that is already taken.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, func, insert, select, text

from domain import proofs
from domain.checkout import order_number_for
from domain.db import db, write_transaction
from domain.demo_receipts import Receipt, receipt_file
from domain.models import (
    Customer,
    Order,
    OrderEvent,
    OrderLine,
    PaymentMethod,
    Product,
    ShippingMethod,
    Variant,
    new_token,
    utcnow,
)
from domain.money import format_money
from domain.phones import store_region, to_e164
from domain.status import DeliveryStatus, OrderStatus
from domain.store import ensure_store_defaults, get_settings

SURNAMES = "陳 李 張 黃 何 林 吳 劉 蔡 鄭 梁 謝 郭 曾 羅 馮 鄧 許 蕭 楊".split()
GIVEN = ("大文 小明 嘉欣 志強 美玲 家豪 詠詩 俊傑 曉彤 子軒 偉倫 靜儀 浩然 雅婷 "
         "振華 慧敏 建國 麗珊 國榮 翠芬 文 敏 傑 欣").split()
EN_FIRST = ("Chan Tai Man|Wong Siu Ming|Amy|Kelvin|Jason|Cherry|Karen|Ivan|Winnie|Ricky|"
            "Mandy|Eric|Fiona|Gordon|Queenie|Terence|Yuki|Natalie|Oscar|Priscilla").split("|")
EN_LAST = "Chan Wong Lee Cheung Ho Lam Ng Lau Tsang Leung Yip Fung Kwok Mak Tang".split()
DISTRICTS = ["旺角彌敦道 {n} 號 {f} 樓", "Flat {f}B, {n} Nathan Road, Mong Kok, Kowloon",
             "沙田正街 {n} 號 {f} 樓", "Flat {f}A, {n} King's Road, North Point",
             "荃灣青山公路 {n} 號 {f} 樓", "{n} Queen's Road Central, {f}/F, Central",
             "將軍澳唐德街 {n} 號 {f} 樓", "Flat {f}C, {n} Castle Peak Road, Yuen Long"]

PRODUCTS = [
    ("曲奇禮盒", ["原味", "朱古力", "抹茶"], 12800), ("Butter Cookies Tin", ["250g", "500g"], 9800),
    ("蛋卷", ["原味", "芝麻"], 8800), ("Egg Roll Gift Set", [""], 16800),
    ("手工朱古力", ["黑朱古力", "牛奶朱古力"], 6800), ("鳳梨酥", ["6件裝", "12件裝"], 11800),
    ("Cotton T-Shirt", ["S", "M", "L", "XL"], 14900), ("純棉衛衣", ["M", "L"], 29900),
    ("Denim Jacket", ["S", "M", "L"], 45900), ("針織冷帽", [""], 9900),
    ("Canvas Tote Bag", ["Natural", "Black"], 12900), ("皮革銀包", ["啡色", "黑色"], 38900),
    ("Wireless Earbuds", ["White", "Black"], 49900), ("USB-C 充電線", ["1m", "2m"], 5900),
    ("Phone Case", ["iPhone 17", "iPhone 17 Pro", "Pixel 11"], 12900), ("行動電源", ["10000mAh"], 19900),
    ("Smart Watch Strap", ["38mm", "42mm"], 8900), ("藍牙喇叭", [""], 35900),
    ("Jasmine Green Tea", ["100g", "250g"], 7800), ("普洱茶餅", ["357g"], 28800),
    ("Hand Cream", ["Rose", "Lavender"], 6900), ("香薰蠟燭", ["白茶", "檀香"], 15800),
    ("Ceramic Mug", ["White", "Blue"], 9800), ("手繪明信片", ["一套六張"], 4800),
    ("Notebook A5", ["Dotted", "Lined"], 5800), ("鋼筆", ["幼嘴", "中嘴"], 26800),
    ("Dried Mango", ["200g"], 4500), ("XO醬", ["小瓶", "大瓶"], 16800),
    ("Kids Sneakers", ["EU28", "EU30", "EU32"], 32900), ("瑜伽墊", ["紫色", "灰色"], 21900),
]

# Weights of final statuses for historical orders (older orders are mostly done).
STATUS_WEIGHTS = [(OrderStatus.COMPLETED, 55), (OrderStatus.CANCELED, 10),
                  (OrderStatus.PROCESSING, 15), (OrderStatus.PENDING_PAYMENT, 10),
                  (OrderStatus.PENDING_CONFIRMATION, 10)]
SOURCE_WEIGHTS = [("online_store", 70), ("on_behalf", 12), ("live_stream", 13), ("api", 5)]
CHUNK = 5000


def _ean13(rng: random.Random) -> str:
    body = "489" + "".join(str(rng.randrange(10)) for _ in range(9))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _phone(rng: random.Random) -> str:
    return f"{rng.choice('5679')}{rng.randrange(1000):03d} {rng.randrange(10000):04d}"


def _customer(rng: random.Random, i: int) -> dict:
    if rng.random() < 0.6:
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        email = f"hk{i}{rng.randrange(100)}@example.hk"
    else:
        first, last = rng.choice(EN_FIRST), rng.choice(EN_LAST)
        name = first if " " in first else f"{first} {last}"
        email = f"{name.split()[0].lower()}.{last.lower()}{i}@example.com"
    address = rng.choice(DISTRICTS).format(n=rng.randrange(1, 300), f=rng.randrange(2, 40))
    return {"name": name, "phone": _phone(rng), "email": email, "address": address}


def _weighted(rng: random.Random, pairs):
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def seed_catalog(rng: random.Random) -> list[dict]:
    """Products and variants; returns variant rows (with product name)."""
    session = db.session
    if session.scalar(select(func.count(Product.id))):
        rows = session.execute(select(Variant, Product.name).join(Product)
                               .order_by(Variant.id)).all()
        return [{"id": v.id, "product_id": v.product_id, "product_name": pname, "name": v.name,
                 "sku": v.sku, "barcode": v.barcode, "price": v.price_cents} for v, pname in rows]
    variants = []
    for p_index, (name, options, price) in enumerate(PRODUCTS, start=1):
        product = Product(name=name, description="")
        session.add(product)
        session.flush()
        for o_index, option in enumerate(options, start=1):
            stock = None if rng.random() < 0.1 else rng.randrange(20, 400)
            variant = Variant(product_id=product.id, name=option,
                              sku=f"SKU-{p_index:03d}-{o_index}", barcode=_ean13(rng),
                              price_cents=price + (o_index - 1) * 1000, stock=stock)
            session.add(variant)
            session.flush()
            variants.append({"id": variant.id, "product_id": product.id, "product_name": name,
                             "name": option, "sku": variant.sku, "barcode": variant.barcode,
                             "price": variant.price_cents})
    return variants


DEMO_NOTIFICATION_EMAIL = "orders@demo-shop.example"


# Made-up details, so the demo store's customers see what real ones would.
DEMO_PAYMENT_DETAILS = {
    "fps": {"fps_id": "1234567", "payee_name": "Cookie Lab Ltd"},
    "bank_transfer": {"bank_name": "HSBC", "payee_name": "Cookie Lab Ltd",
                      "account_number": "004-123-456789-001"},
    "payme": {"payme_link": "https://payme.hsbc/cookielab"},
}


def _demo_payment_details() -> None:
    """Fill in and switch on the manual methods a demo store has left empty."""
    for code, details in DEMO_PAYMENT_DETAILS.items():
        method = db.session.scalar(select(PaymentMethod).where(PaymentMethod.code == code))
        if method is None or any(getattr(method, key) for key in details):
            continue
        for key, value in details.items():
            setattr(method, key, value)
        method.enabled = True
    db.session.commit()


def seed_demo(orders: int, seed: int = 1, *, now: datetime | None = None) -> int:
    """Create ``orders`` orders (about 2% of them unpaid drafts). Returns how many."""
    ensure_store_defaults()
    now = now or utcnow()
    rng = random.Random(f"orders-{seed}")
    settings = get_settings()
    _demo_payment_details()
    if not settings.notification_email:
        # So a merchant trying the demo sees the store's own "new order" email too
        # (kept on the Mail page: make run has no SMTP).
        settings.notification_email = DEMO_NOTIFICATION_EMAIL
        db.session.commit()
    prefix = settings.order_prefix
    stored: list[str] = []  # proof files written; removed again if the seed fails
    try:
        _seed_orders(orders, seed, now, rng, prefix, settings, stored)
    except BaseException:
        for relative in stored:
            proofs.delete_stored(relative)
        raise
    return orders


def _seed_orders(orders, seed, now, rng, prefix, settings, stored) -> None:
    receipt = _ReceiptMaker(seed, settings)
    with write_transaction() as session:
        # The catalogue has its own generator so orders come out the same
        # whether or not the products already existed.
        variants = seed_catalog(random.Random(f"catalog-{seed}"))
        payments = session.execute(select(PaymentMethod.id, PaymentMethod.name, PaymentMethod.kind,
                                          PaymentMethod.code)).all()
        shippings = session.execute(
            select(ShippingMethod.id, ShippingMethod.name, ShippingMethod.kind, ShippingMethod.fee_cents)).all()
        customer_count = max(50, orders // 4)
        start_customer = (session.scalar(select(func.max(Customer.id))) or 0) + 1
        customers = [_customer(rng, i) for i in range(customer_count)]
        region = store_region()
        for cust in customers:  # as place_order stores it (bulk inserts bypass it)
            cust["e164"] = to_e164(cust["phone"], region)
        for chunk in range(0, customer_count, CHUNK):
            session.execute(insert(Customer), [
                {"id": start_customer + i, "created_at": now - timedelta(days=400), **c}
                for i, c in enumerate(customers[chunk:chunk + CHUNK], start=chunk)])
        next_id = (session.scalar(select(func.max(Order.id))) or 0) + 1
        start = now - timedelta(days=365)
        span = int((now - start).total_seconds())
        # Placement times sorted so that order numbers grow with time, as in a real store.
        offsets = sorted(rng.randrange(span) for _ in range(orders))
        order_rows, line_rows, event_rows = [], [], []
        for n in range(orders):
            order_id = next_id + n
            placed = start + timedelta(seconds=offsets[n])
            cust_index = rng.randrange(customer_count)
            cust = customers[cust_index]
            pay_id, pay_name, pay_kind, pay_code = rng.choice(payments)
            ship_id, ship_name, ship_kind, fee = rng.choice(shippings)
            chosen = rng.sample(variants, k=rng.choice([1, 1, 1, 2, 2, 3, 4]))
            lines = [(v, rng.choice([1, 1, 1, 2, 3])) for v in chosen]
            subtotal = sum(v["price"] * q for v, q in lines)
            discount = rng.choice([0, 0, 0, 0, 1000, 2000]) if subtotal > 5000 else 0
            total = subtotal - discount + fee
            draft = rng.random() < 0.02
            age_days = (now - placed).days
            status, delivery, tracking, events = _history(rng, pay_kind, ship_kind, age_days,
                                                          placed, total, pay_name, ship_name)
            number = order_number_for(order_id, prefix)
            proof = {}
            if status == OrderStatus.PENDING_CONFIRMATION and not draft:
                uploaded = next(at for type_, _a, at, _d in events if type_ == "proof_uploaded")
                proof = receipt.store(order_id, number, pay_code, pay_name, cust["name"], total,
                                      uploaded, stored)
            order_rows.append({
                "id": order_id, "number": number,
                "kind": "draft" if draft else "placed",
                "status": None if draft else status.value,
                "delivery_status": DeliveryStatus.UNFULFILLED.value if draft else delivery,
                "source": "on_behalf" if draft else _weighted(rng, SOURCE_WEIGHTS),
                "public_token": new_token(),
                "customer_id": start_customer + cust_index, "customer_name": cust["name"],
                "customer_phone": cust["phone"], "customer_phone_e164": cust["e164"],
                "customer_email": cust["email"],
                "shipping_address": "" if ship_kind == "pickup" else cust["address"],
                "payment_method_id": None if draft else pay_id,
                "payment_method_name": "" if draft else pay_name,
                "payment_kind": "" if draft else pay_kind,
                "shipping_method_id": ship_id, "shipping_method_name": ship_name,
                "shipping_kind": ship_kind, "subtotal_cents": subtotal,
                "discount_cents": discount, "shipping_fee_cents": fee, "extra_charge_cents": 0,
                "total_cents": total, "tracking_code": "" if draft else tracking,
                # The books, as the actions keep them: paid (or proof sent) once past
                # Pending payment; the demo's canceled orders were never paid.
                "paid_cents": total if not draft and status in (
                    OrderStatus.PENDING_CONFIRMATION, OrderStatus.PROCESSING,
                    OrderStatus.COMPLETED) else 0,
                "tracking_code_by_carrier": bool(tracking) and ship_kind == "logistics" and not draft,
                "cancel_reason": "Customer changed their mind"
                if status == OrderStatus.CANCELED and not draft else "",
                "placed_at": None if draft else placed, "created_at": placed,
                "updated_at": placed, "proof_path": None, "proof_sha256": None,
                "proof_uploaded_at": None, **proof,
            })
            for v, qty in lines:
                line_rows.append({
                    "order_id": order_id, "variant_id": v["id"], "product_id": v["product_id"],
                    "product_name": v["product_name"], "variant_name": v["name"],
                    "sku": v["sku"], "barcode": v["barcode"], "unit_price_cents": v["price"],
                    "quantity": qty})
            if draft:
                events = [("draft_created", "staff", placed, {})]
            for type_, actor, at, details in events:
                event_rows.append({"order_id": order_id, "type": type_, "actor_type": actor,
                                   "actor_label": {"staff": "Demo Owner", "system": "Shopdesk",
                                                   "customer": cust["name"]}[actor],
                                   "created_at": at, "details": details})
            if len(order_rows) >= CHUNK:
                _flush(order_rows, line_rows, event_rows)
        _flush(order_rows, line_rows, event_rows)
        _book_carrier_parcels()
        sync_id_sequences()


def _book_carrier_parcels() -> None:
    """The demo's carrier-coded orders were booked with the test carrier: each has its
    Shipment (label data left to the order and the store), so its label prints."""
    from domain.models import Shipment

    rows = db.session.execute(select(Order.id, Order.tracking_code, Order.placed_at).where(
        Order.kind == "placed", Order.tracking_code_by_carrier.is_(True),
        Order.id.not_in(select(Shipment.order_id)))).all()
    if rows:
        db.session.execute(insert(Shipment), [
            {"order_id": oid, "carrier": "test", "tracking_code": code, "weight_grams": 1000,
             "label": {"test": True}, "created_at": at} for oid, code, at in rows])


class _ReceiptMaker:
    """Writes each waiting order's transfer receipt, as a customer's upload would be kept."""

    def __init__(self, seed: int, settings):
        self.seed = seed
        self.payee = settings.name
        self.currency = settings.currency
        self.zone = ZoneInfo(settings.timezone)

    def store(self, order_id, number, pay_code, pay_name, payer, total, uploaded,
              stored: list[str]) -> dict:
        # Its own generator, so receipts never shift the orders that follow.
        rng = random.Random(f"receipt-{self.seed}-{order_id}")
        paid = uploaded - timedelta(minutes=rng.randrange(1, 40), seconds=rng.randrange(60))
        clean = receipt_file(Receipt(
            method_code=pay_code, method_name=pay_name, payee=self.payee, payer=payer,
            amount=format_money(total, self.currency),
            paid_at=paid.replace(tzinfo=UTC).astimezone(self.zone).replace(tzinfo=None),
            reference=number, seed=f"{self.seed}-{order_id}"))
        relative = proofs.store(clean)
        stored.append(relative)
        return {"proof_path": relative, "proof_sha256": clean.sha256,
                "proof_uploaded_at": uploaded, "updated_at": uploaded}


def sync_id_sequences() -> None:
    """Move each table's id sequence past the highest id in use (PostgreSQL only).

    Rows inserted with explicit ids leave a serial/identity sequence behind, and
    its next value would then collide. Every table in the metadata with a single
    integer key is covered, so tables added later need nothing here. A sequence
    only ever moves forward: ids it has handed out (rows since deleted, rolled-back
    inserts) are never given out again. SQLite needs nothing: its rowid follows
    the highest id.
    """
    session = db.session
    if session.get_bind().dialect.name != "postgresql":
        return
    for table in db.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        sequence = session.scalar(text("SELECT pg_get_serial_sequence(quote_ident(:t), :c)"),
                                  {"t": table.name, "c": keys[0].name})
        if sequence is None:
            continue
        # Names come from our own metadata, quoted as identifiers; values are bound.
        column, name = f'"{keys[0].name}"', f'"{table.name}"'
        session.execute(text(
            "SELECT setval(CAST(:seq AS regclass), m)"
            f" FROM (SELECT max({column}) AS m FROM {name}) AS t WHERE m IS NOT NULL"
            " AND m >= coalesce(pg_sequence_last_value(CAST(:seq AS regclass)), 0)"),
            {"seq": sequence})


def _flush(order_rows, line_rows, event_rows) -> None:
    session = db.session
    if order_rows:
        session.execute(insert(Order), order_rows)
    if line_rows:
        session.execute(insert(OrderLine), line_rows)
    if event_rows:
        session.execute(insert(OrderEvent), event_rows)
    order_rows.clear()
    line_rows.clear()
    event_rows.clear()


def _history(rng, pay_kind, ship_kind, age_days, placed, total, pay_name, ship_name):
    """A plausible final status for an order of this age, and the events that led there."""
    status = _weighted(rng, STATUS_WEIGHTS)
    if age_days > 14 and status in (OrderStatus.PENDING_PAYMENT, OrderStatus.PENDING_CONFIRMATION,
                                    OrderStatus.PROCESSING) and rng.random() < 0.85:
        status = OrderStatus.COMPLETED
    if pay_kind == "online" and status in (OrderStatus.PENDING_PAYMENT,
                                           OrderStatus.PENDING_CONFIRMATION):
        status = OrderStatus.PROCESSING
    first = OrderStatus.PROCESSING if pay_kind == "online" else OrderStatus.PENDING_PAYMENT
    step = timedelta(hours=rng.randrange(1, 30))
    events = [("order_placed", "customer", placed, {"to_status": first.value,
               "total_cents": total, "payment_method": pay_name, "shipping_method": ship_name})]
    at = placed
    delivery, tracking = DeliveryStatus.UNFULFILLED.value, ""

    def add(type_, actor, details):
        nonlocal at
        at = at + step
        events.append((type_, actor, at, details))

    paid_path = status in (OrderStatus.PENDING_CONFIRMATION, OrderStatus.PROCESSING,
                           OrderStatus.COMPLETED)
    if pay_kind == "manual" and paid_path:
        add("proof_uploaded", "customer", {"from_status": "pending_payment",
                                            "to_status": "pending_confirmation"})
        if status != OrderStatus.PENDING_CONFIRMATION:
            add("payment_confirmed", "staff", {"from_status": "pending_confirmation",
                                               "to_status": "processing"})
    if status == OrderStatus.COMPLETED:
        if ship_kind == "pickup":
            add("ready_for_pickup", "staff", {"from_status": "processing", "to_status": "processing"})
            add("pickup_completed", "staff", {"from_status": "processing", "to_status": "completed"})
            delivery = DeliveryStatus.PICKED_UP.value
        else:
            tracking = f"SF{rng.randrange(10**11, 10**12)}"
            add("order_shipped", "staff", {"from_status": "processing", "to_status": "completed",
                                           "tracking_code": tracking})
            delivery = DeliveryStatus.SHIPPED.value
    elif status == OrderStatus.CANCELED:
        if pay_kind == "manual" and rng.random() < 0.5:
            add("order_expired", "system", {"from_status": "pending_payment",
                                            "to_status": "canceled",
                                            "reason": "Payment deadline passed"})
        else:
            add("order_rejected", "staff", {"from_status": first.value, "to_status": "canceled",
                                            "reason": "Customer changed their mind"})
    elif status == OrderStatus.PROCESSING and ship_kind == "logistics" and rng.random() < 0.5:
        tracking = f"SF{rng.randrange(10**11, 10**12)}"
    return status, delivery, tracking, events
