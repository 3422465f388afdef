"""Fixtures of the outbox tests: a store with a notification address, the staff
member as an actor, a PostgreSQL database made by the real migrations.

Use from a test module with ``pytest_plugins = ["outbox_fixtures"]``; the
plain helpers are in outbox_helpers.py.
"""

from __future__ import annotations

import pytest
from conftest import fill_payment_details
from outbox_helpers import SHOP, pg_admin

from domain.actors import Actor
from domain.db import db
from domain.store import get_settings


@pytest.fixture
def shop(app):
    """A store with a notification address, a payment deadline and a reminder."""
    settings = get_settings()
    settings.name = "曲奇實驗室 Cookie Lab"
    settings.notification_email = SHOP
    settings.payment_deadline_days = 2
    settings.reminder_lead_hours = 24
    db.session.commit()
    return settings


@pytest.fixture
def staff_actor(staff):
    return Actor.staff(staff)


@pytest.fixture(scope="module")
def pg_app():
    """A fresh PostgreSQL database with the real migrations (as tests/test_postgres.py)."""
    import uuid

    from flask_migrate import upgrade

    from app import create_app
    from domain.store import ensure_store_defaults

    admin_url, admin = pg_admin()
    name = f"shopdesk_outbox_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    app = create_app({"TESTING": True, "SECRET_KEY": "pg", "SQLALCHEMY_DATABASE_URI": url,
                      "NOTIFY_DISPATCH": False})
    try:
        with app.app_context():
            upgrade()
            ensure_store_defaults()
            fill_payment_details()
            settings = get_settings()
            settings.notification_email = SHOP
            db.session.commit()
            db.session.remove()
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


