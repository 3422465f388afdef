"""Shopdesk application factory: config, extensions, blueprints, CLI."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask, render_template
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFError, CSRFProtect

from domain import models  # noqa: F401  (registers every table on db.metadata)
from domain.db import db

csrf = CSRFProtect()
login_manager = LoginManager()
migrate = Migrate()
htmx = HTMX()

INSECURE_KEYS = {"", "dev", "change-me", "secret"}
# PostgreSQL connections per process: gunicorn's threads per worker (deploy/).
DB_POOL_SIZE = 16


class ConfigError(RuntimeError):
    pass


def _secret_key(app: Flask, env: str) -> str:
    key = os.environ.get("SECRET_KEY", "")
    if env == "production":
        if key in INSECURE_KEYS or len(key) < 32:
            raise ConfigError("SECRET_KEY must be set to a random string of 32+ characters "
                              "in production (python -c 'import secrets; print(secrets.token_hex(32))').")
        return key
    if key:
        return key
    # Development: a random key kept in instance/ so sessions survive restarts.
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(test_config: dict | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    env = os.environ.get("SHOPDESK_ENV", "development")
    app.config.from_mapping(
        SHOPDESK_ENV=env,
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", f"sqlite:///{Path(app.instance_path) / 'shopdesk.db'}"),
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        REDIS_URL=os.environ.get("REDIS_URL", ""),
        # Outgoing mail (domain/notify/transport.py). Without SMTP_HOST every message
        # is kept as instance/mail/<id>.eml and shown on the desk's Mail page.
        SMTP_HOST=os.environ.get("SMTP_HOST", ""),
        SMTP_PORT=os.environ.get("SMTP_PORT", ""),
        SMTP_USER=os.environ.get("SMTP_USER", ""),
        SMTP_PASSWORD=os.environ.get("SMTP_PASSWORD", ""),
        SMTP_SECURITY=os.environ.get("SMTP_SECURITY", "starttls"),  # starttls | ssl | none
        SMTP_TIMEOUT=os.environ.get("SMTP_TIMEOUT", "20"),
        MAIL_FROM=os.environ.get("MAIL_FROM", ""),
        MAIL_FOLDER=str(Path(app.instance_path) / "mail"),
        # Where customers reach this store: the links in emails start with it.
        PUBLIC_URL=os.environ.get("SHOPDESK_PUBLIC_URL", "http://127.0.0.1:5000"),
        # After a commit that wrote messages or bell entries, queue delivery and wake
        # the desks (jobs/outbox.py). Tests without a Redis turn it off.
        NOTIFY_DISPATCH=True,
        # WhatsApp Business Cloud API (domain/notify/whatsapp.py). The sandbox is a fake
        # of that API served by this app at /_sandbox/whatsapp (blueprints/whatsapp_sandbox.py):
        # on outside production unless SHOPDESK_WHATSAPP_SANDBOX=0, so `make run` can try the
        # whole feature without credentials.
        WHATSAPP_API_BASE=os.environ.get("WHATSAPP_API_BASE", "https://graph.facebook.com"),
        WHATSAPP_SANDBOX_SERVER=os.environ.get(
            "SHOPDESK_WHATSAPP_SANDBOX", "0" if env == "production" else "1") == "1",
        UPLOAD_FOLDER=str(Path(app.instance_path) / "uploads"),
        GENERATED_FOLDER=str(Path(app.instance_path) / "generated"),
        MAX_CONTENT_LENGTH=11 * 1024 * 1024,  # 10 MB proof + form overhead
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=env == "production",
        # No REMEMBER_COOKIE_*: Flask-Login's remember cookie is never set; "Keep me
        # signed in" is a revocable token of our own (blueprints/auth/web_sessions.py).
        WTF_CSRF_TIME_LIMIT=None,  # tokens live as long as the session
        # Over HTTPS Flask-WTF also demands a same-host Referer, which the shop's pages
        # (Referrer-Policy: no-referrer, to keep secret links private) never get:
        # every customer form failed behind nginx. The token and SameSite cookies stay.
        WTF_CSRF_SSL_STRICT=False,
        ORDERS_PER_PAGE=50,
    )
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app, env)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgres://"):
        app.config["SQLALCHEMY_DATABASE_URI"] = app.config["SQLALCHEMY_DATABASE_URI"].replace(
            "postgres://", "postgresql+psycopg://", 1)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql") \
            and "pool_size" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]:
        # One connection per gunicorn thread (deploy/ runs DB_POOL_SIZE threads), a few
        # more for a burst: SQLAlchemy's default 5 + 10 made the 16th request wait.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
            "pool_size": int(os.environ.get("SHOPDESK_DB_POOL_SIZE", "") or DB_POOL_SIZE),
            "max_overflow": 4}

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # A file on this machine cannot drop a connection: no ping before each request.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_pre_ping": False}

    proxies = int(os.environ.get("SHOPDESK_PROXY_COUNT", "0") or 0)
    if proxies:
        # Behind nginx: take the client address and scheme from X-Forwarded-*,
        # so the login throttle counts real clients, not the proxy.
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)

    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True,
                     directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    from flask_babel import gettext

    from domain.i18n import N_

    # Flashed through gettext when the request is drawn, in the reader's language.
    login_manager.login_message = N_("Please sign in to continue.")
    login_manager.localize_callback = gettext
    # Revocation is the server-side session record's job (blueprints/auth/web_sessions.py);
    # "strong" would sign a phone out each time it moves between Wi-Fi and mobile data.
    login_manager.session_protection = "basic"

    from blueprints.auth.web_sessions import register_proxy_warning, register_session_loading

    register_session_loading(app, login_manager)  # every request checks its server-side session
    register_proxy_warning(app)  # X-Forwarded-For arrives while SHOPDESK_PROXY_COUNT is 0

    import jobs
    from blueprints.alerts.routes import bp as alerts_bp
    from blueprints.auth.routes import bp as auth_bp
    from blueprints.background.routes import bp as background_bp
    from blueprints.backups.routes import bp as backups_bp
    from blueprints.bulk_ship.routes import bp as bulk_ship_bp
    from blueprints.cli import register_cli
    from blueprints.drafts.routes import bp as drafts_bp
    from blueprints.health import init_health
    from blueprints.i18n import init_i18n
    from blueprints.mail.routes import bp as mail_bp
    from blueprints.media import bp as media_bp
    from blueprints.modify.routes import bp as modify_bp
    from blueprints.orders.routes import bp as orders_bp
    from blueprints.papers import bulk as _papers_bulk  # noqa: F401  (its routes join papers_bp)
    from blueprints.papers.routes import bp as papers_bp
    from blueprints.products.routes import bp as products_bp
    from blueprints.rendering import register_template_helpers
    from blueprints.request_log import init_request_log
    from blueprints.review.routes import bp as review_bp
    from blueprints.settings.routes import bp as settings_bp
    from blueprints.storefront.routes import bp as storefront_bp
    from blueprints.whatsapp.routes import bp as whatsapp_bp

    for blueprint in (auth_bp, orders_bp, settings_bp, drafts_bp, review_bp, storefront_bp,
                      background_bp, backups_bp, alerts_bp, mail_bp, products_bp,
                      media_bp, whatsapp_bp, modify_bp, bulk_ship_bp, papers_bp):
        app.register_blueprint(blueprint)
    if app.config.get("WHATSAPP_SANDBOX_SERVER"):
        from blueprints.whatsapp_sandbox import bp as whatsapp_sandbox_bp

        app.register_blueprint(whatsapp_sandbox_bp)
    register_template_helpers(app)
    init_i18n(app)  # Flask-Babel: the reader's language, money and dates in it
    register_cli(app)
    jobs.init_app(app)
    init_health(app)  # /healthz and the owner's worker banner
    init_request_log(app)  # one log line per request, with its request id

    @app.get("/logo")
    def store_logo():
        """The store's logo: public, like the name on an invoice."""
        from flask import abort, send_file

        from domain.store import logo_file

        path = logo_file()
        if path is None:
            abort(404)
        return send_file(path, max_age=300)

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        from flask_babel import gettext as _

        return render_template("error.html", title=_("Form expired"),
                               message=_("This form has expired or was not sent from Shopdesk. "
                                         "Reload the page and try again.")), 400

    @app.errorhandler(413)
    def too_large(exc):
        from flask_babel import gettext as _

        return render_template("error.html", title=_("File too large"),
                               message=_("The upload is larger than %(size)s MB.", size=10)), 413

    from blueprints.security import init_security
    from blueprints.site import init_site

    init_security(app)  # CSP, no-store, HSTS, static caching, the over-long URL guard
    init_site(app)  # styled 400/403/404/405/414 pages, /favicon.ico

    from blueprints.compression import init_compression

    init_compression(app)  # gzip for static files, and for pages this site itself asked for

    return app
