"""Shared fixtures: a real SQLite file per test (schema from the real migrations),
real users, and factories for products and orders."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from app import create_app
from domain.accounts import create_user
from domain.db import db, forget_writer_lock
from domain.demo import DEMO_PAYMENT_DETAILS
from domain.models import PaymentMethod, Product, ShippingMethod, Variant
from domain.orders import Checkout, CustomerDetails, place_order
from domain.store import ensure_store_defaults

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """Run the Alembic migrations once; each test starts from a copy of this file."""
    from flask_migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "template.db"
    app = create_app({"TESTING": True, "SECRET_KEY": "test",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context():
        upgrade()
        ensure_store_defaults()
        fill_payment_details()
        db.session.remove()
        db.engine.dispose()
    # Fold the WAL into the main file so a plain copy carries everything.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


# The manual methods start off until their details are filled in (domain/store.py);
# most tests want a store that takes FPS, bank transfer and PayMe: the demo's details.
TEST_PAYMENT_DETAILS = DEMO_PAYMENT_DETAILS


def fill_payment_details() -> None:
    for code, details in TEST_PAYMENT_DETAILS.items():
        method = db.session.query(PaymentMethod).filter_by(code=code).one()
        for key, value in details.items():
            setattr(method, key, value)
        method.enabled = True
    db.session.commit()


@pytest.fixture
def app(migrated_db, tmp_path):
    db_path = tmp_path / "shopdesk.db"
    shutil.copy(migrated_db, db_path)
    instance = tmp_path / "instance"
    instance.mkdir()
    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}",
        "UPLOAD_FOLDER": str(instance / "uploads"),
        "GENERATED_FOLDER": str(instance / "generated"),
        "MAIL_FOLDER": str(instance / "mail"),
        "SERVER_NAME": None,
        # No Redis in most tests: outbox rows wait (tests with a worker turn it on).
        "NOTIFY_DISPATCH": False,
    })
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    forget_writer_lock(str(db_path))


@pytest.fixture
def db_path(app) -> str:
    return app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")


@pytest.fixture
def owner(app):
    return create_user(email="owner@shop.test", password=PASSWORD, role="owner", name="Olivia Owner")


@pytest.fixture
def staff(app):
    return create_user(email="staff@shop.test", password=PASSWORD, role="staff", name="陳小明")


class _FreshContextClient:
    """Each request runs in its own app context (its own ``g`` and db session), as
    in production, even though the test itself holds an app context."""

    def __init__(self, app):
        self.app = app
        self._http = app.test_client()

    def __getattr__(self, name):
        method = getattr(self._http, name)
        if name not in ("get", "post", "open"):
            return method

        def call(*args, **kwargs):
            with self.app.app_context():
                response = method(*args, **kwargs)
            # End the test's own read snapshot so its next query sees what the request wrote.
            db.session.rollback()
            return response
        return call


class Client:
    """Test client that signs in and sends the CSRF token like the real pages do."""

    def __init__(self, app):
        self.app = app
        self.http = _FreshContextClient(app)
        self._token = None

    def login(self, user, password=PASSWORD):
        page = self.http.get("/login")
        token = self.token_from(page.get_data(as_text=True))
        response = self.http.post("/login", data={"email": user.email, "password": password,
                                                  "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
        self._token = None
        return self

    @staticmethod
    def token_from(html: str) -> str:
        match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html) or \
            re.search(r'"X-CSRFToken": "([^"]+)"', html)
        assert match, "no CSRF token on the page"
        return match.group(1)

    def csrf(self) -> str:
        if self._token is None:
            self._token = self.token_from(self.http.get("/orders").get_data(as_text=True))
        return self._token

    def get(self, url, htmx=False, **kw):
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self.http.get(url, headers=headers, **kw)

    def post(self, url, data=None, htmx=False, csrf=True, **kw):
        data = dict(data or {})
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
            if csrf:
                headers["X-CSRFToken"] = self.csrf()
        elif csrf:
            data.setdefault("csrf_token", self.csrf())
        return self.http.post(url, data=data, headers=headers, **kw)


@pytest.fixture
def client(app):
    return Client(app)


@pytest.fixture
def owner_client(app, owner):
    return Client(app).login(owner)


@pytest.fixture
def staff_client(app, staff):
    return Client(app).login(staff)


# ------------------------------------------------------------------ factories


@pytest.fixture
def make_variant(app):
    counter = {"n": 0}

    def make(name="曲奇禮盒", variant="原味", price_cents=12800, stock=10, barcode=None):
        counter["n"] += 1
        product = Product(name=name)
        db.session.add(product)
        db.session.flush()
        v = Variant(product_id=product.id, name=variant, sku=f"T-{counter['n']:04d}",
                    barcode=barcode or f"48900000{counter['n']:05d}", price_cents=price_cents,
                    stock=stock)
        db.session.add(v)
        db.session.commit()
        return v

    return make


def method_id(model, **where):
    return db.session.query(model).filter_by(**where).first().id


@pytest.fixture
def make_order(app, make_variant):
    """Place a real order through the domain. Overrides: items, payment (code),
    shipping (kind), customer fields, stock."""

    def make(*, items=None, payment="fps", shipping="delivery", name="陳大文",
             phone="9123 4567", email="tai.man@example.hk", address="旺角彌敦道 1 號",
             stock=10, quantity=1, **checkout):
        if items is None:
            items = [(make_variant(stock=stock).id, quantity)]
        order = place_order(Checkout(
            customer=CustomerDetails(name=name, phone=phone, email=email, address=address),
            items=items,
            payment_method_id=method_id(PaymentMethod, code=payment),
            shipping_method_id=method_id(ShippingMethod, kind=shipping),
            **checkout))
        return order

    return make


@pytest.fixture(scope="session")
def chromium_path():
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but no Chromium at {path}: browser tests must run in CI")
        pytest.skip(f"No Chromium at {path}; install Debian's chromium to run browser tests")
    return path


@pytest.fixture
def live_server(app):
    """The real app served by werkzeug on a free loopback port, in a thread."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture
def browser(chromium_path):
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=chromium_path, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield instance
        instance.close()


def browser_login(page, base_url, email, password=PASSWORD):
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/orders")
