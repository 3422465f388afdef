"""The fake WhatsApp Cloud API (domain/notify/whatsapp_fake.py, blueprints/whatsapp_sandbox.py):
every behaviour through real HTTP against the loopback server, signed webhooks in order,
and the in-app sandbox through the Flask test client."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import threading
import time

import httpx
import pytest
from flask import Flask, request
from werkzeug.serving import WSGIRequestHandler, make_server

from domain.notify.whatsapp_fake import SANDBOX_APP_SECRET, registered_templates

pytest_plugins = ["whatsapp_fixtures"]

AUTH = {"Authorization": "Bearer sandbox-token"}


def template_body(to="+85291230001", **template_overrides):
    template = {"name": "shopdesk_order_confirmation", "language": {"code": "zh_HK"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "parameter_name": "order_number", "text": "CL-1001"},
                    {"type": "text", "parameter_name": "customer_name", "text": "陳大文"}]}]}
    template.update(template_overrides)
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "template", "template": template}


HTTP = httpx.Client()  # one client: httpx.post() builds a TLS context per call


def send(api, body=None, headers=AUTH, timeout=5.0, **kw):
    return HTTP.post(f"{api.base_url}/v21.0/1234567890/messages",
                      json=template_body(**kw) if body is None else body,
                      headers=headers, timeout=timeout)


def expected_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class Receiver:
    """A real HTTP server taking webhooks; answers with `answers` in turn, then 200."""

    def __init__(self):
        self.received: list[tuple[str, dict, bytes, float]] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        app = Flask("receiver")

        @app.post("/<path:path>")
        def take(path):
            with self.lock:
                self.received.append(("/" + path, dict(request.headers), request.get_data(),
                                      time.monotonic()))
                status = self.answers.pop(0) if self.answers else 200
            return "", status

        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def wait(self, count: int, timeout: float = 10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.received) < count:
            time.sleep(0.02)
        return list(self.received)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def api(whatsapp_api, receiver):
    whatsapp_api.webhook_url = receiver.url + "/settings/whatsapp/webhook"
    whatsapp_api.webhook_delay = 0.05
    whatsapp_api.webhook_gap = 0.05
    return whatsapp_api


# -- the messages endpoint ------------------------------------------------------


def test_success_has_the_real_shape_and_is_recorded(api):
    response = send(api)
    assert response.status_code == 200
    data = response.json()
    assert data["messaging_product"] == "whatsapp"
    assert data["contacts"] == [{"input": "+85291230001", "wa_id": "85291230001"}]
    wamid = data["messages"][0]["id"]
    assert wamid.startswith("wamid.") and len(wamid) > 20
    assert api.sent == [wamid]
    assert "set-cookie" not in response.headers
    sent = api.sends[-1]
    assert sent.path == "/v21.0/1234567890/messages"
    assert sent.headers["Authorization"] == "Bearer sandbox-token"
    assert sent.json["template"]["components"][0]["parameters"][1]["text"] == "陳大文"
    assert sent.to == "+85291230001"
    assert sent.reply.status == 200 and sent.reply.body == data


def test_positional_parameters_and_no_components_are_accepted(api):
    positional = {"type": "body", "parameters": [{"type": "text", "text": "CL-1"}]}
    assert send(api, components=[positional]).status_code == 200
    body = template_body(name="hello_world", language={"code": "en_US"})
    del body["template"]["components"]
    assert send(api, body).status_code == 200
    assert len(set(api.sent)) == 2


@pytest.mark.parametrize("ending,status,code", [("0400", 400, 131026), ("0429", 429, 130429),
                                                 ("0500", 500, 131000)])
def test_error_numbers(api, ending, status, code):
    response = send(api, to="+8529123" + ending)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert error["fbtrace_id"] and error["message"].startswith(f"(#{code})")
    assert error["error_data"]["details"]
    if status == 429:
        assert response.headers["Retry-After"] == "2"
    assert api.sent == []  # nothing accepted, so nothing billed and no webhooks
    time.sleep(0.2)
    assert api.webhooks == []


def test_slow_number_answers_after_the_client_gave_up(api):
    api.timeout_delay = 0.8
    with pytest.raises(httpx.ReadTimeout):
        send(api, to="+85291230408", timeout=0.3)
    assert len(api.sent) == 1  # the API took it; the client never heard
    started = time.monotonic()
    response = send(api, to="+85291230408", timeout=5)
    assert response.status_code == 200 and time.monotonic() - started >= 0.7


def test_slow_number_waits_fifteen_seconds_by_default(whatsapp_api):
    assert whatsapp_api.timeout_delay == 15.0


def test_failed_number_gets_a_failed_webhook(api, receiver):
    wamid = send(api, to="+85291230410").json()["messages"][0]["id"]
    path, headers, body, _ = receiver.wait(1)[0]
    status = json.loads(body)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["id"] == wamid and status["status"] == "failed"
    assert status["errors"][0]["code"] == 131047
    assert status["errors"][0]["title"] == "Re-engagement message"
    time.sleep(0.3)
    assert api.statuses() == [(wamid, "failed")]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "sandbox-token"},
                                     {"Authorization": "Bearer SANDBOX-TOKEN"}])
def test_wrong_token_is_401_code_190(api, headers):
    for response in (send(api, headers=headers),
                     HTTP.get(f"{api.base_url}/v21.0/1234567890", headers=headers)):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 190
    assert api.sent == []


def test_phone_number_lookup(api):
    response = HTTP.get(f"{api.base_url}/v21.0/1234567890", headers=AUTH)
    assert response.status_code == 200
    data = response.json()
    assert data["display_phone_number"] == "+852 5555 0000"
    assert data["verified_name"] == "Shopdesk Sandbox"
    assert data["id"] == "1234567890"
    # The same API at the in-app path.
    assert HTTP.get(f"{api.sandbox_base}/v21.0/x", headers=AUTH).json()["id"] == "x"


def _body_with(**changes):
    body = template_body()
    for key, value in changes.items():
        target = body
        *parents, last = key.split("__")
        for parent in parents:
            target = target[parent]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return body


NAMED = {"type": "text", "parameter_name": "order_number", "text": "CL-1"}


@pytest.mark.parametrize("body,code,words", [
    (_body_with(messaging_product=KeyError), 100, "messaging_product"),
    (_body_with(messaging_product="sms"), 100, "messaging_product"),
    (_body_with(to=KeyError), 100, "to"),
    (_body_with(to="+852 9123 0001"), 131009, "to"),
    (_body_with(to="=HYPERLINK(1)"), 131009, "to"),
    (_body_with(to=85291230001), 100, "to"),
    (_body_with(to="１２３４５６７８９"), 131009, "to"),  # full-width digits
    (_body_with(type="text"), 100, "type"),
    (_body_with(template=KeyError), 100, "template"),
    (_body_with(template__name=KeyError), 100, "template[name]"),
    (_body_with(template__name="Shopdesk Order"), 100, "template[name]"),
    (_body_with(template__language=KeyError), 100, "template[language][code]"),
    (_body_with(template__language={"code": "zh_Hant_HK"}), 132001, "language"),
    (_body_with(template__components="body"), 100, "template[components]"),
    (_body_with(template__components=[{"type": "middle"}]), 100, "[type]"),
    (_body_with(template__components=[{"type": "body", "parameters": [
        NAMED, {"type": "text", "text": "x"}]}]), 100, "mixes named"),
    (_body_with(template__components=[{"type": "body", "parameters": [NAMED, NAMED]}]),
     100, "twice"),
    (_body_with(template__components=[{"type": "body", "parameters": [
        {"type": "text", "text": ""}]}]), 131008, "[text]"),
    (_body_with(template__components=[{"type": "body", "parameters": [
        {"type": "text", "text": 42}]}]), 131008, "[text]"),
    (_body_with(template__components=[{"type": "body", "parameters": [
        {"type": "text", "text": "line\nbreak"}]}]), 132018, "new-line"),
    (_body_with(template__components=[{"type": "body", "parameters": [
        {"type": "image", "text": "x"}]}]), 100, "[type]"),
    (["not", "an", "object"], 100, "JSON object"),
])
def test_invalid_bodies_are_400_naming_the_problem(api, body, code, words):
    response = send(api, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert words in error["error_data"]["details"]
    assert api.sent == []


def test_not_json_and_too_large(api):
    url = f"{api.base_url}/v21.0/1/messages"
    response = HTTP.post(url, content=b"{nope", headers=AUTH)
    assert response.status_code == 400 and "JSON" in response.json()["error"]["message"]
    big = template_body()
    big["template"]["components"][0]["parameters"][0]["text"] = "x" * 70_000
    response = HTTP.post(url, json=big, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["code"] == 100
    assert api.sent == []


def test_unknown_paths(api):
    for path in ("/nope/1/messages", "/v21.0/1/contacts", "/v21.0/1/messages/extra"):
        response = HTTP.post(api.base_url + path, json=template_body(), headers=AUTH)
        assert response.status_code == 400 and response.json()["error"]["code"] == 2500
    assert api.sent == []


def registered_body(name="shopdesk_order_confirmation", language="zh_HK", to="+85291230001",
                    params=None):
    if params is None:
        params = registered_templates()[name][0]
    body = template_body(to=to, name=name, language={"code": language})
    body["template"]["components"] = [{"type": "body", "parameters": [
        {"type": "text", "parameter_name": p, "text": f"value of {p}"} for p in params]}]
    return body


def test_with_registered_templates_only_those_pass(api):
    api.webhook_url = None
    api.templates = registered_templates()
    assert len(api.templates) == 10  # the 9 types and hello_world
    for name, (params, languages) in api.templates.items():
        for language in languages:
            body = registered_body(name, language, params=params)
            if not params:
                del body["template"]["components"]
            assert send(api, body).status_code == 200, (name, language)
    positional = registered_body()
    for parameter in positional["template"]["components"][0]["parameters"]:
        del parameter["parameter_name"]
    refusals = [
        (registered_body("shopdesk_no_such_type", params=["order_number"]), 132001),
        (registered_body(language="en_US"), 132001),
        (registered_body(params=["order_number"]), 132000),  # too few
        (registered_body(params=[*api.templates["shopdesk_order_confirmation"][0], "extra"]),
         132000),
        (positional, 132000),  # the approved template has named parameters
    ]
    for body, code in refusals:
        response = send(api, body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code, response.json()


def test_the_shopdesk_client_talks_to_it(api):
    """W1's CloudAPIClient against the fake: success, each error and the lookup."""
    whatsapp = pytest.importorskip("domain.notify.whatsapp")
    api.webhook_url = None
    api.templates = registered_templates()
    client = whatsapp.CloudAPIClient(api.base_url, "1234567890", "sandbox-token", "v21.0",
                                     timeout=0.5)
    for wa_type in whatsapp.TYPES.values():
        for language in ("en", "zh_HK"):
            message = whatsapp.TemplateMessage(wa_type.template_name, language,
                                               {p: "陳大文" for p in wa_type.params})
            assert client.send_template("+85291230001", message).startswith("wamid.")
    assert client.send_test("+85291230001") in api.sent
    assert client.check() == "+852 5555 0000"
    message = whatsapp.TemplateMessage("shopdesk_order_confirmation", "en",
                                       {p: "x" for p in whatsapp.TYPES["order_confirmation"].params})
    outcomes = {}
    api.timeout_delay = 1.0
    for ending in ("0400", "0429", "0500", "0408"):
        with pytest.raises(whatsapp.WhatsAppError) as caught:
            client.send_template("+8529123" + ending, message)
        outcomes[ending] = (caught.value.outcome, caught.value.code, caught.value.retry_after)
    assert outcomes == {"0400": ("permanent", 131026, None), "0429": ("retry", 130429, 2.0),
                        "0500": ("retry", 131000, None), "0408": ("unknown", None, None)}
    bad = whatsapp.CloudAPIClient(api.base_url, "1234567890", "wrong", "v21.0")
    with pytest.raises(whatsapp.WhatsAppError) as caught:
        bad.check()
    assert caught.value.code == 190


# -- webhooks ---------------------------------------------------------------------


def test_webhooks_are_signed_and_in_order(api, receiver):
    # The answer does not wait for webhooks: with them held back 2 s, none has
    # arrived when it comes. (A wall-clock bound on the answer flaked on a busy CI.)
    api.webhook_delay = 2.0
    response = send(api)
    assert receiver.received == []
    wamid = response.json()["messages"][0]["id"]
    got = receiver.wait(3)
    assert len(got) == 3
    statuses = []
    for path, headers, body, _ in got:
        assert path == "/settings/whatsapp/webhook"
        assert headers["Content-Type"] == "application/json"
        assert hmac.compare_digest(headers["X-Hub-Signature-256"],
                                   expected_signature(body, SANDBOX_APP_SECRET))
        assert headers["X-Hub-Signature-256"] != expected_signature(body, "another secret")
        payload = json.loads(body)
        assert payload["object"] == "whatsapp_business_account"
        entry = payload["entry"][0]
        change = entry["changes"][0]
        assert change["field"] == "messages"
        value = change["value"]
        assert value["messaging_product"] == "whatsapp"
        assert value["metadata"]["phone_number_id"] == "1234567890"
        status = value["statuses"][0]
        assert status["id"] == wamid and status["recipient_id"] == "85291230001"
        assert status["timestamp"].isdigit()
        assert abs(int(status["timestamp"]) - time.time()) < 60
        statuses.append(status["status"])
    assert statuses == ["sent", "delivered", "read"]
    assert api.statuses(wamid) == [(wamid, "sent"), (wamid, "delivered"), (wamid, "read")]
    assert all(w.delivered and w.attempts == 1 for w in api.wait_webhooks(3))


def test_webhooks_are_about_a_third_of_a_second_later_by_default(whatsapp_api, receiver):
    whatsapp_api.webhook_url = receiver.url + "/hook"
    started = time.monotonic()
    send(whatsapp_api)
    first = receiver.wait(1)[0][3]
    assert first - started >= 0.25
    assert first - started < 5  # generous: a busy CI machine stalls threads for a second


def test_a_changed_app_secret_signs_with_it(api, receiver):
    api.app_secret = "a real app secret"
    send(api)
    _, headers, body, _ = receiver.wait(1)[0]
    assert headers["X-Hub-Signature-256"] == expected_signature(body, "a real app secret")


def test_a_failed_webhook_is_retried(api, receiver):
    api.webhook_backoff = 0.05
    receiver.answers = [500, 503]  # the first status fails twice, then gets through
    send(api)
    got = receiver.wait(5)
    assert len(got) == 5
    assert got[0][2] == got[1][2] == got[2][2]  # the same bytes each time
    sent = api.wait_webhooks(3)
    assert [w.status for w in sent] == ["sent", "delivered", "read"]
    assert sent[0].attempts == 3 and sent[0].answers == [500, 503, 200]


def test_an_unreachable_receiver_gives_up_quietly(whatsapp_api):
    whatsapp_api.webhook_url = "http://127.0.0.1:9/unreachable"
    whatsapp_api.webhook_delay = whatsapp_api.webhook_gap = 0.01
    whatsapp_api.webhook_backoff = 0.01
    assert send(whatsapp_api).status_code == 200
    end = time.monotonic() + 5
    while time.monotonic() < end and not (
            len(whatsapp_api.webhooks) == 3 and all(w.attempts == 3 for w in whatsapp_api.webhooks)):
        time.sleep(0.02)
    assert [w.attempts for w in whatsapp_api.webhooks] == [3, 3, 3]
    assert not any(w.delivered for w in whatsapp_api.webhooks)


def test_without_a_receiver_webhooks_are_kept_not_sent(whatsapp_api):
    whatsapp_api.webhook_delay = whatsapp_api.webhook_gap = 0.01
    wamid = send(whatsapp_api).json()["messages"][0]["id"]
    end = time.monotonic() + 5
    while len(whatsapp_api.webhooks) < 3 and time.monotonic() < end:
        time.sleep(0.02)
    assert whatsapp_api.statuses() == [(wamid, s) for s in ("sent", "delivered", "read")]
    assert [w.attempts for w in whatsapp_api.webhooks] == [0, 0, 0]


def test_callback_and_manual_mode_feed_a_flask_test_client(whatsapp_api):
    target = Flask("target")
    seen = []

    @target.post("/settings/whatsapp/webhook")
    def hook():
        seen.append((threading.get_ident(), request.headers["X-Hub-Signature-256"],
                     request.get_data()))
        return "", 200

    whatsapp_api.feed_to(target.test_client())
    whatsapp_api.webhook_mode = "manual"
    whatsapp_api.webhook_delay = whatsapp_api.webhook_gap = 0.01
    send(whatsapp_api)
    end = time.monotonic() + 5
    while len(whatsapp_api.pending) < 3 and time.monotonic() < end:
        time.sleep(0.02)
    assert seen == []  # nothing until the test says so
    assert whatsapp_api.deliver_pending() == 3
    assert [s[0] for s in seen] == [threading.get_ident()] * 3  # from this thread
    assert [json.loads(s[2])["entry"][0]["changes"][0]["value"]["statuses"][0]["status"]
            for s in seen] == ["sent", "delivered", "read"]
    assert all(s[1] == expected_signature(s[2], SANDBOX_APP_SECRET) for s in seen)
    assert whatsapp_api.deliver_pending() == 0


# -- hold, reset, concurrency -----------------------------------------------------


def test_hold_blocks_the_next_send_until_released(api, receiver):
    api.hold()
    answer = {}
    thread = threading.Thread(target=lambda: answer.setdefault("r", send(api)))
    thread.start()
    assert api.wait_held(1, timeout=5)
    assert len(api.sent) == 1 and "r" not in answer  # accepted, no answer yet
    time.sleep(0.2)
    assert receiver.received == []  # no webhook before the answer
    api.release()
    thread.join(5)
    assert answer["r"].status_code == 200
    assert answer["r"].json()["messages"][0]["id"] == api.sent[0]
    assert len(receiver.wait(3)) == 3
    assert api.held == 0
    assert send(api).status_code == 200  # released: no longer blocks


def test_hold_ends_when_the_server_stops():
    from whatsapp_fixtures import start_server

    server = start_server()
    server.hold()
    errors = []

    def call():
        try:
            send(server, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert server.wait_held(1)
    started = time.monotonic()
    server.stop()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 3


def test_reset_forgets_and_releases(api):
    send(api)
    api.hold()
    api.reset()
    assert api.requests == [] and api.sent == []
    assert send(api).status_code == 200  # not held
    assert len(api.sent) == 1


def test_twenty_concurrent_sends(api, receiver):
    api.webhook_url = None  # webhooks are not this test's business
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        send(api, to=f"+8529123{i:04d}"))) for i in range(1, 21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(r.status_code for r in results) == [200] * 20
    ids = {r.json()["messages"][0]["id"] for r in results}
    assert len(ids) == 20 and ids == set(api.sent)


# -- the in-app sandbox ---------------------------------------------------------


def test_in_app_sandbox_answers_without_login_csrf_or_cookies(app, receiver):
    from blueprints.whatsapp_sandbox import fake_for

    client = app.test_client()  # no session, no CSRF token

    assert app.config["WHATSAPP_SANDBOX_SERVER"]
    app.config["PUBLIC_URL"] = receiver.url + "/"  # where make run's own server would be
    fake = fake_for(app)
    assert fake.webhook_url == receiver.url + "/settings/whatsapp/webhook"
    fake.webhook_delay = fake.webhook_gap = 0.05
    response = client.post("/_sandbox/whatsapp/v21.0/sandbox-phone/messages",
                           data=json.dumps(registered_body(to="+85291230001")),
                           headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    assert "Set-Cookie" not in response.headers
    wamid = response.get_json()["messages"][0]["id"]
    got = receiver.wait(3)
    assert [json.loads(b)["entry"][0]["changes"][0]["value"]["statuses"][0]["status"]
            for _, _, b, _ in got] == ["sent", "delivered", "read"]
    for path, headers, body, _ in got:
        assert path == "/settings/whatsapp/webhook"
        assert headers["X-Hub-Signature-256"] == expected_signature(body, "sandbox-app-secret")
        assert wamid in body.decode()

    lookup = client.get("/_sandbox/whatsapp/v21.0/sandbox-phone", headers=AUTH)
    assert lookup.status_code == 200
    assert lookup.get_json()["display_phone_number"] == "+852 5555 0000"
    assert "Set-Cookie" not in lookup.headers
    assert client.get("/_sandbox/whatsapp/v21.0/sandbox-phone").status_code == 401
    wrong = client.post("/_sandbox/whatsapp/v21.0/sandbox-phone/messages",
                        json=registered_body(to="+85291230429"), headers=AUTH)
    assert wrong.status_code == 429 and wrong.headers["Retry-After"] == "2"
    # The in-app sandbox knows exactly Shopdesk's templates, like a real account would.
    unknown = client.post("/_sandbox/whatsapp/v21.0/sandbox-phone/messages",
                          json=template_body(), headers=AUTH)
    assert unknown.status_code == 400 and unknown.get_json()["error"]["code"] == 132000
    fake.close()


def test_in_app_sandbox_secret_is_the_one_use_sandbox_stores():
    config = pytest.importorskip("domain.notify.whatsapp_config")
    assert config.SANDBOX_APP_SECRET == SANDBOX_APP_SECRET


def test_in_app_sandbox_is_absent_when_off(migrated_db, tmp_path):
    from app import create_app

    db_path = tmp_path / "off.db"
    shutil.copy(migrated_db, db_path)
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}",
                      "WHATSAPP_SANDBOX_SERVER": False, "NOTIFY_DISPATCH": False})
    assert "whatsapp_sandbox" not in app.blueprints
    with app.app_context():
        client = app.test_client()
        assert client.post("/_sandbox/whatsapp/v21.0/sandbox-phone/messages",
                           json=template_body(), headers=AUTH).status_code == 404
        assert client.get("/_sandbox/whatsapp/v21.0/sandbox-phone",
                          headers=AUTH).status_code == 404


def test_make_run_story_end_to_end(app, make_order):
    """The real app served over HTTP, as `make run` does: sandbox credentials, an order,
    the WhatsApp delivery sends to the app's own /_sandbox/whatsapp, whose signed webhooks
    come back to /settings/whatsapp/webhook and mark the message read."""
    config = pytest.importorskip("domain.notify.whatsapp_config")
    delivery = pytest.importorskip("domain.notify.whatsapp_delivery")
    from blueprints.whatsapp_sandbox import fake_for
    from domain.db import db
    from domain.models import OutboxMessage

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        app.config["PUBLIC_URL"] = f"http://127.0.0.1:{server.server_port}"
        fake = fake_for(app)
        fake.webhook_delay = fake.webhook_gap = 0.05
        config.use_sandbox()
        config.activate()
        order = make_order(phone="9123 4567")
        row = db.session.query(OutboxMessage).filter_by(order_id=order.id,
                                                        channel="whatsapp").one()
        counts = delivery.deliver_whatsapp_due()
        assert counts.get("sent") == 1, counts
        assert fake.sends[-1].json["template"]["name"] == "shopdesk_order_confirmation"
        assert fake.sends[-1].reply.status == 200
        wamid = fake.sent[-1]
        fake.wait_webhooks(3)
        assert [w.answers for w in fake.webhooks] == [[200], [200], [200]]
        db.session.expire_all()
        row = db.session.get(OutboxMessage, row.id)
        assert row.provider_id == wamid
        assert row.delivery_status == "read"
    finally:
        fake_for(app).close()
        server.shutdown()
        server.server_close()
