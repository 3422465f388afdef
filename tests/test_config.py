"""Configuration: production refuses weak keys; development is safe by default."""

from __future__ import annotations

import pytest

from app import ConfigError, create_app


@pytest.mark.parametrize("key", [None, "", "dev", "short-key"])
def test_production_refuses_without_a_real_secret_key(monkeypatch, tmp_path, key):
    monkeypatch.setenv("SHOPDESK_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    if key is None:
        monkeypatch.delenv("SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app()


def test_production_with_real_key_sets_secure_cookies(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPDESK_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 64)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/x.db")
    app = create_app()
    # Our remember cookie takes the session cookie's Secure flag (tests/test_sessions.py).
    assert app.config["SESSION_COOKIE_SECURE"]
    assert app.config["SESSION_COOKIE_HTTPONLY"]


def test_sqlite_runs_in_wal_mode_with_busy_timeout(app):
    from sqlalchemy import text

    from domain.db import db

    assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert db.session.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
