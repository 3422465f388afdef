"""A fake WhatsApp Business Cloud API on loopback, for the WhatsApp tests.

Use from a test module with ``pytest_plugins = ["whatsapp_fixtures"]``. The
``whatsapp_api`` fixture serves blueprints/whatsapp_sandbox.py (the same code as
the app's sandbox) from a tiny Flask app on 127.0.0.1:<free port> in a thread:

    whatsapp_api.base_url      "http://127.0.0.1:<port>": the Graph root, for
                               WHATSAPP_API_BASE (the API is at /<version>/<phone id>/...)
    whatsapp_api.sandbox_base  base_url + "/_sandbox/whatsapp" (same API, the in-app path:
                               PUBLIC_URL = base_url makes a sandbox config reach it)
    whatsapp_api.token         "sandbox-token" (settable)
    whatsapp_api.requests      every request received: .method .path .headers .body .json .to
                               .reply (.status, .body, .headers: what the fake answered)
    whatsapp_api.sends         the POST .../messages requests only
    whatsapp_api.sent          the wamids the API accepted, in order
    whatsapp_api.webhook_url   where status webhooks are POSTed (None and no on_webhook:
                               made and kept in .webhooks, sent nowhere) ...
    whatsapp_api.on_webhook    ... or a callback(body_bytes, headers) -> status | response | None
    whatsapp_api.app_secret    the key of X-Hub-Signature-256 ("sandbox-app-secret")
    whatsapp_api.webhooks      every webhook made: .body .headers .payload .wamid .status
                               .delivered .attempts; wait_webhooks(n, timeout) waits for n
    whatsapp_api.statuses()    [(wamid, status), ...] in the order sent
    whatsapp_api.webhook_mode  "thread" (default) | "manual": queued until deliver_pending()
                               sends them from the test's own thread (for a Flask test client)
    whatsapp_api.webhook_delay / webhook_gap / timeout_delay   0.3 s / 0.3 s / 15 s
    whatsapp_api.hold() / release() / wait_held(n)   sends are accepted, then block
    whatsapp_api.reset()       forget everything, release
    whatsapp_api.feed_to(client, path="/settings/whatsapp/webhook")   on_webhook that POSTs
                               each webhook to a Flask test client (manual mode: call
                               deliver_pending() from the test's thread)
    whatsapp_api.stop()        done by the fixture; start_server(**options) makes another
                               (blueprints/whatsapp_sandbox.py: benchmarks, scripts)

A sandbox config (whatsapp_config.use_sandbox()) reaches this server when the app's
PUBLIC_URL is whatsapp_api.base_url; real credentials do with WHATSAPP_API_BASE =
whatsapp_api.base_url and the token "sandbox-token".

The recipient's last four digits choose the behaviour (domain/notify/whatsapp_fake.py):
0400 -> 400 code 131026, 0429 -> 429 Retry-After 2 code 130429, 0500 -> 500 code
131000, 0408 -> answers after timeout_delay, 0410 -> accepted then a "failed" webhook
(131047); anything else -> accepted, then sent, delivered and read webhooks.
"""

from __future__ import annotations

import pytest

from blueprints.whatsapp_sandbox import SandboxServer, start_server
from domain.notify.whatsapp_fake import FakeCloudAPI, sign  # noqa: F401  (for tests)

__all__ = ["SandboxServer", "start_server"]


@pytest.fixture
def whatsapp_api():
    server = start_server()
    yield server
    server.stop()
