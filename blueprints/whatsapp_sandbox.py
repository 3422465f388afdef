"""A fake of the WhatsApp Business Cloud API, served by the app itself at /_sandbox/whatsapp.

Registered only when WHATSAPP_SANDBOX_SERVER is on (app.py; never in production
unless asked for). It is a machine API, like graph.facebook.com: no login, no CSRF,
no cookies, English JSON. The behaviour lives in domain/notify/whatsapp_fake.py.

Sandbox webhooks go to the app's own PUBLIC_URL + /settings/whatsapp/webhook, signed
with the sandbox app secret that whatsapp_config.use_sandbox() stores; the dev
server is threaded, so its webhook thread can call back while requests are served.
Config WHATSAPP_SANDBOX_WEBHOOK_URL (optional) sends them elsewhere.

start_server() runs the same blueprint on a loopback port of its own, in a thread
(tests/whatsapp_fixtures.py, bench/whatsapp.py).
"""

from __future__ import annotations

import threading

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.serving import WSGIRequestHandler, make_server

from app import csrf
from domain.notify.whatsapp_fake import (
    MAX_BODY_BYTES,
    FakeCloudAPI,
    graph_error,
    registered_templates,
)

bp = Blueprint("whatsapp_sandbox", __name__, url_prefix="/_sandbox/whatsapp")
csrf.exempt(bp)

EXTENSION = "whatsapp_sandbox"  # app.extensions key of the app's FakeCloudAPI
WEBHOOK_PATH = "/settings/whatsapp/webhook"
_create_lock = threading.Lock()


def fake_for(app) -> FakeCloudAPI:
    """The app's fake (made on first use): a test server puts its own in app.extensions."""
    fake = app.extensions.get(EXTENSION)
    if fake is None:
        with _create_lock:
            fake = app.extensions.get(EXTENSION)
            if fake is None:
                url = app.config.get("WHATSAPP_SANDBOX_WEBHOOK_URL") or (
                    app.config.get("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/")
                    + WEBHOOK_PATH)
                # A long-running dev server keeps only the latest records.
                # Like a Meta account where exactly Shopdesk's templates are approved.
                fake = FakeCloudAPI(webhook_url=url, max_records=500,
                                    templates=registered_templates())
                app.extensions[EXTENSION] = fake
    return fake


def _json(reply) -> Response:
    response = Response(reply.body_bytes(), status=reply.status, mimetype="application/json")
    for name, value in reply.headers.items():
        response.headers[name] = value
    return response


@bp.route("/<path:subpath>", methods=["GET", "POST"])
def api(subpath: str):
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _json(graph_error(400, 100, "(#100) The request body is too large."))
    body = request.get_data(cache=False) if request.method == "POST" else b""
    fake = fake_for(current_app)
    return _json(fake.handle(request.method, subpath, dict(request.headers), body))


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # no line per request on stderr
        pass


class SandboxServer:
    """A running loopback server around one FakeCloudAPI; other attributes are the fake's
    (reading and setting: server.webhook_url = ..., server.sent, server.hold())."""

    def __init__(self, fake: FakeCloudAPI, host: str = "127.0.0.1", port: int = 0):
        self.__dict__["fake"] = fake
        app = Flask("whatsapp_fake")
        app.extensions[EXTENSION] = fake
        # At the root like graph.facebook.com, and at the app's own sandbox path.
        app.register_blueprint(bp, url_prefix="", name="whatsapp_sandbox_root")
        app.register_blueprint(bp)
        self.__dict__["server"] = make_server(host, port, app, threaded=True,
                                              request_handler=_QuietHandler)
        self.__dict__["thread"] = threading.Thread(
            target=self.server.serve_forever, args=(0.05,),  # poll often: a quick stop()
            name="whatsapp-fake-server", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def base_url(self) -> str:
        """The Graph root (for WHATSAPP_API_BASE): the API is at /<version>/<phone id>/..."""
        return f"http://{self.server.host}:{self.port}"

    @property
    def sandbox_base(self) -> str:
        """The same API at the in-app path (PUBLIC_URL = base_url reaches it in sandbox mode)."""
        return self.base_url + bp.url_prefix

    def feed_to(self, client, path: str = WEBHOOK_PATH):
        """Deliver webhooks by POSTing them to a Flask test client (its status is the answer)."""
        def post(body: bytes, headers: dict) -> int:
            return client.post(path, data=body, headers=headers).status_code

        self.fake.on_webhook = post
        return post

    def stop(self) -> None:
        self.fake.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __getattr__(self, name):
        return getattr(self.fake, name)

    def __setattr__(self, name, value):
        setattr(self.fake, name, value)


def start_server(fake: FakeCloudAPI | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 **options) -> SandboxServer:
    """Serve a fake (a new one made with `options`) on host:port (0: a free port)."""
    return SandboxServer(fake or FakeCloudAPI(**options), host, port)
