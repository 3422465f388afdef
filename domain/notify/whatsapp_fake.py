"""A fake of the WhatsApp Business Cloud API: the shared logic of the sandbox.

Served by the app itself at /_sandbox/whatsapp (blueprints/whatsapp_sandbox.py) so
`make run` can try the whole feature without credentials, and by a loopback server
in the tests (tests/whatsapp_fixtures.py). It speaks the real request and response
shapes of the Graph API:

- POST /<version>/<phone_number_id>/messages with Authorization "Bearer <token>"
  and a template message body -> 200 {"messaging_product", "contacts", "messages"},
  then signed status webhooks (sent, delivered, read) from a background thread;
- GET /<version>/<phone_number_id> -> the phone number's display number and name.

What the recipient's last four digits ask for (see outcome_for):
0400 -> 400 code 131026; 0429 -> 429 Retry-After 2, code 130429; 0500 -> 500 code
131000; 0408 -> answers only after `timeout_delay` seconds (past any client timeout);
0410 -> accepted, then a "failed" webhook with 131047 (Re-engagement message).

Pure Python (no Flask): FakeCloudAPI.handle(method, path, headers, body) -> Reply.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SANDBOX_TOKEN = "sandbox-token"
SANDBOX_APP_SECRET = "sandbox-app-secret"  # what whatsapp_config.use_sandbox() stores
SANDBOX_PHONE_NUMBER_ID = "sandbox-phone"
SANDBOX_BUSINESS_ACCOUNT_ID = "sandbox-business"  # as whatsapp_config.SANDBOX_BUSINESS_ID
DISPLAY_PHONE_NUMBER = "+852 5555 0000"
VERIFIED_NAME = "Shopdesk Sandbox"

VERSION_RE = re.compile(r"^v\d{1,3}\.\d{1,3}$")
TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")  # "en", "zh_HK", "en_US"
PARAMETER_NAME_RE = re.compile(r"^[a-z0-9_]{1,60}$")
# The real API refuses these in a body parameter (error 132018).
BAD_PARAMETER_TEXT_RE = re.compile(r"[\n\t]| {5,}")
MAX_BODY_BYTES = 64 * 1024

# The recipient's last four digits -> what the fake does (the sandbox's test numbers).
OUTCOMES = {"0400": "undeliverable", "0429": "rate_limited", "0500": "server_error",
            "0408": "timeout", "0410": "failed_webhook"}


@dataclass
class Reply:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: dict
    headers: dict = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass
class ReceivedRequest:
    """One request that reached the fake (bodies that are not JSON keep json=None)."""

    method: str
    path: str
    headers: dict
    body: bytes
    json: Any
    at: float
    reply: Reply | None = None  # what the fake answered (None while it is still held)

    @property
    def to(self) -> str | None:
        return self.json.get("to") if isinstance(self.json, dict) else None


@dataclass
class Webhook:
    """One status webhook the fake sent (or tried to): its exact bytes and headers."""

    body: bytes
    headers: dict
    wamid: str
    status: str
    attempts: int = 0
    delivered: bool = False
    answers: list = field(default_factory=list)  # HTTP status or error text per attempt

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class BadRequest(Exception):
    """An invalid send request: 400 with Graph error code 100 (or the code given)."""

    def __init__(self, detail: str, code: int = 100, title: str = "Invalid parameter"):
        super().__init__(detail)
        self.detail, self.code, self.title = detail, code, title


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header value for a webhook body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def graph_error(status: int, code: int, message: str, *, details: str | None = None,
                type_: str = "OAuthException", headers: dict | None = None) -> Reply:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    return Reply(status, {"error": error}, headers or {})


def outcome_for(to: str) -> str:
    digits = re.sub(r"\D", "", to)
    return OUTCOMES.get(digits[-4:], "ok")


def registered_templates() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """The templates a sandbox account has "approved": Shopdesk's 8 (domain/notify/whatsapp.py)
    in en and zh_HK, and Meta's ready-made hello_world. name -> (parameter names, languages)."""
    from domain.notify.whatsapp import TYPES

    templates = {t.template_name: (tuple(t.params), tuple(t.text)) for t in TYPES.values()}
    templates["hello_world"] = ((), ("en_US",))
    return templates


def validate_message(body: Any, templates: dict | None = None) -> str:
    """Check a send body as the Cloud API would; return the recipient's digits (the wa_id).
    With `templates` (registered_templates()), the template must be one of them, in one of
    its languages, with exactly its named parameters."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    if body.get("messaging_product") != "whatsapp":
        raise BadRequest("The parameter messaging_product is required and must be \"whatsapp\".")
    if body.get("recipient_type", "individual") != "individual":
        raise BadRequest("The parameter recipient_type must be \"individual\".")
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise BadRequest("The parameter to is required.")
    digits = to[1:] if to.startswith("+") else to
    if not digits.isascii() or not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise BadRequest("The parameter to must be a phone number in international format "
                         "(8 to 15 digits, optionally after a +).", code=131009,
                         title="Parameter value is not valid")
    if body.get("type") != "template":
        raise BadRequest("The parameter type must be \"template\" (the sandbox takes template "
                         "messages only).")
    template = body.get("template")
    if not isinstance(template, dict):
        raise BadRequest("The parameter template is required.")
    name = template.get("name")
    if not isinstance(name, str) or not TEMPLATE_NAME_RE.match(name):
        raise BadRequest("The parameter template[name] is required: lowercase letters, digits "
                         "and underscores.")
    language = template.get("language")
    if not isinstance(language, dict) or not isinstance(language.get("code"), str):
        raise BadRequest("The parameter template[language][code] is required.")
    if not LANGUAGE_RE.match(language["code"]):
        raise BadRequest(f"template[language][code] {language['code']!r} is not a language code "
                         "such as en or zh_HK.", code=132001,
                         title="Template name does not exist in the translation")
    if "policy" in language and language["policy"] != "deterministic":
        raise BadRequest("template[language][policy] must be \"deterministic\".")
    names = _validate_components(template.get("components"))
    if templates is not None:
        _check_registered(name, language["code"], names, templates)
    return digits


def _check_registered(name: str, language: str, names: list[str] | None,
                      templates: dict) -> None:
    if name not in templates or language not in templates[name][1]:
        raise BadRequest(f"Template name {name!r} does not exist in {language!r}.", code=132001,
                         title="Template name does not exist in the translation")
    expected = templates[name][0]
    given = names or []
    if sorted(given) != sorted(expected):
        raise BadRequest(f"Template {name!r} takes the parameters {', '.join(expected) or 'none'}"
                         f"; the request has {', '.join(given) or 'none'}.", code=132000,
                         title="Number of parameters does not match the expected number of "
                               "params")


def _validate_components(components: Any) -> list[str] | None:
    """The body's parameter names ("1", "2", ... when positional), None without a body."""
    if components is None:
        return None  # a template without variables (hello_world) has none
    if not isinstance(components, list):
        raise BadRequest("template[components] must be a list.")
    names = None
    for i, component in enumerate(components):
        where = f"template[components][{i}]"
        if not isinstance(component, dict):
            raise BadRequest(f"{where} must be an object.")
        kind = component.get("type")
        if kind not in ("header", "body", "button", "footer"):
            raise BadRequest(f"{where}[type] must be header, body, button or footer.")
        parameters = component.get("parameters", [])
        if not isinstance(parameters, list):
            raise BadRequest(f"{where}[parameters] must be a list.")
        if kind != "body":
            continue
        if names is not None:
            raise BadRequest("template[components] has more than one body component.")
        names = _validate_body_parameters(parameters, where)
    return names


def _validate_body_parameters(parameters: list, where: str) -> list[str]:
    named: list[str] = []
    styles = set()
    for j, parameter in enumerate(parameters):
        at = f"{where}[parameters][{j}]"
        if not isinstance(parameter, dict):
            raise BadRequest(f"{at} must be an object.")
        if parameter.get("type") != "text":
            raise BadRequest(f"{at}[type] must be \"text\".")
        text = parameter.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadRequest(f"{at}[text] is required and must not be empty.", code=131008,
                             title="Required parameter is missing")
        if BAD_PARAMETER_TEXT_RE.search(text):
            raise BadRequest(f"{at}[text]: Param text cannot have new-line/tab characters or "
                             "more than 4 consecutive spaces.", code=132018,
                             title="There was an issue with the parameters in your template.")
        if "parameter_name" in parameter:
            pname = parameter["parameter_name"]
            if not isinstance(pname, str) or not PARAMETER_NAME_RE.match(pname):
                raise BadRequest(f"{at}[parameter_name] must be lowercase letters, digits and "
                                 "underscores.")
            if pname in named:
                raise BadRequest(f"{at}[parameter_name] {pname!r} appears twice.")
            named.append(pname)
            styles.add("named")
        else:
            named.append(str(j + 1))
            styles.add("positional")
    if len(styles) > 1:
        raise BadRequest(f"{where}[parameters] mixes named (parameter_name) and positional "
                         "parameters.")
    return named


class FakeCloudAPI:
    """The fake's state and behaviour. Thread-safe; one per app or per test server.

    Webhooks go to `on_webhook(body_bytes, headers)` if set (it returns an HTTP status,
    an object with .status_code, or None for 200), else are POSTed to `webhook_url`.
    With `webhook_mode = "manual"` they wait in .pending until deliver_pending() sends
    them from the caller's thread (a test feeding them to a Flask test client).
    """

    def __init__(self, *, token: str = SANDBOX_TOKEN, app_secret: str = SANDBOX_APP_SECRET,
                 webhook_url: str | None = None,
                 on_webhook: Callable[[bytes, dict], Any] | None = None,
                 business_account_id: str = SANDBOX_BUSINESS_ACCOUNT_ID,
                 webhook_delay: float = 0.3, webhook_gap: float = 0.3,
                 timeout_delay: float = 15.0, webhook_attempts: int = 3,
                 webhook_backoff: float = 0.3, max_records: int | None = None,
                 templates: dict | None = None):
        self.token = token
        self.app_secret = app_secret
        self.webhook_url = webhook_url
        self.on_webhook = on_webhook
        self.business_account_id = business_account_id
        self.webhook_delay = webhook_delay  # before the first status of a message
        self.webhook_gap = webhook_gap  # between a message's statuses
        self.timeout_delay = timeout_delay  # how long a 0408 recipient waits
        self.webhook_attempts = webhook_attempts
        self.webhook_backoff = webhook_backoff
        self.webhook_mode = "thread"
        self.max_records = max_records  # the in-app sandbox keeps only the latest
        # None: any well-formed template is accepted; registered_templates(): only those.
        self.templates: dict | None = templates
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._released = threading.Event()
        self._released.set()
        self._held_cond = threading.Condition(self._lock)
        self.webhook_workers = 8
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._schedule_cond = threading.Condition()
        self._dispatcher: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._http = None  # httpx.Client, made on the first webhook POST
        self.requests: list[ReceivedRequest] = []
        self.sent: list[str] = []
        self.webhooks: list[Webhook] = []
        self.pending: list[Webhook] = []
        self.held = 0  # sends waiting in hold() right now

    @property
    def sends(self) -> list[ReceivedRequest]:
        """The POST .../messages requests received, in order."""
        return [r for r in list(self.requests)
                if r.method == "POST" and r.path.endswith("/messages")]

    # -- test controls ------------------------------------------------------

    def hold(self) -> None:
        """From now on, each send is accepted (recorded in .sent) and then blocks until
        release(): the API took the message but the client has no answer yet."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until `count` sends are blocked in hold()."""
        with self._held_cond:
            return self._held_cond.wait_for(lambda: self.held >= count, timeout)

    def reset(self) -> None:
        """Forget what was received and sent, drop webhooks not yet sent, release any hold."""
        self.release()
        with self._schedule_cond:
            self._heap.clear()
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self.webhooks.clear()
            self.pending.clear()

    def close(self) -> None:
        """Stop: sleeping sends and webhook threads end at once."""
        self._stop.set()
        self.release()
        with self._schedule_cond:
            self._heap.clear()
            self._schedule_cond.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._http is not None:
            self._http.close()

    def wait_webhooks(self, count: int, timeout: float = 10.0) -> list[Webhook]:
        """Wait until `count` webhooks were delivered (answered 2xx); return them."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            done = [w for w in self.webhooks if w.delivered]
            if len(done) >= count:
                return done
            time.sleep(0.02)
        raise TimeoutError(f"{len([w for w in self.webhooks if w.delivered])} of {count} "
                           "webhooks delivered")

    def statuses(self, wamid: str | None = None) -> list[tuple[str, str]]:
        """(wamid, status) of the webhooks sent so far, in the order sent."""
        return [(w.wamid, w.status) for w in list(self.webhooks)
                if wamid is None or w.wamid == wamid]

    def deliver_pending(self) -> int:
        """Manual mode: send the queued webhooks now, in order, from this thread."""
        with self._lock:
            queued, self.pending[:] = list(self.pending), []
        for webhook in queued:
            while not self._attempt(webhook) and webhook.attempts < self.webhook_attempts:
                time.sleep(self.webhook_backoff * (2 ** (webhook.attempts - 1)))
        return len(queued)

    # -- HTTP ---------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict, body: bytes) -> Reply:
        """Answer one request. `path` is relative to the API root ("v21.0/123/messages")."""
        headers = {k.title(): v for k, v in headers.items()}
        data = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
        received = ReceivedRequest(method.upper(), "/" + path.strip("/"), headers, body, data,
                                   time.time())
        self._record(received)
        received.reply = self._route(method.upper(), path, headers, body, data)
        return received.reply

    def _route(self, method: str, path: str, headers: dict, body: bytes, data: Any) -> Reply:
        parts = [p for p in path.split("/") if p]
        if len(parts) not in (2, 3) or not VERSION_RE.match(parts[0]) \
                or (len(parts) == 3 and parts[2] != "messages"):
            return graph_error(400, 2500, "Unknown path components: /" + "/".join(parts))
        if not self._authorised(headers.get("Authorization")):
            return graph_error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if len(parts) == 2:
            if method != "GET":
                return graph_error(400, 100, "Unsupported post request.")
            return Reply(200, {"display_phone_number": DISPLAY_PHONE_NUMBER,
                               "verified_name": VERIFIED_NAME, "id": parts[1],
                               "quality_rating": "GREEN", "code_verification_status": "VERIFIED"})
        if method != "POST":
            return graph_error(400, 100, "Unsupported get request.")
        return self._send(parts[1], body, data)

    def _authorised(self, header: str | None) -> bool:
        expected = f"Bearer {self.token}"
        return bool(header) and hmac.compare_digest(header.encode(), expected.encode())

    def _send(self, phone_number_id: str, body: bytes, data: Any) -> Reply:
        if len(body) > MAX_BODY_BYTES:
            return graph_error(400, 100, "(#100) The request body is too large.",
                               details="The request body is too large.")
        if data is None:
            return graph_error(400, 100, "(#100) The request body is not valid JSON.",
                               details="The request body is not valid JSON.")
        try:
            digits = validate_message(data, self.templates)
        except BadRequest as exc:
            return graph_error(400, exc.code, f"(#{exc.code}) {exc.title}", details=exc.detail)
        to = data["to"]
        outcome = outcome_for(to)
        if outcome == "undeliverable":
            return graph_error(400, 131026, "(#131026) Message Undeliverable.",
                               details="Unable to deliver message. The recipient is not a "
                                       "WhatsApp user or has not accepted the terms.")
        if outcome == "rate_limited":
            return graph_error(429, 130429, "(#130429) Rate limit hit",
                               details="Cloud API message throughput has been reached.",
                               headers={"Retry-After": "2"})
        if outcome == "server_error":
            return graph_error(500, 131000, "(#131000) Something went wrong",
                               details="Something went wrong. Try again later.")
        wamid = "wamid." + secrets.token_urlsafe(24)
        with self._lock:
            self.sent.append(wamid)
            self._trim(self.sent)
        if not self._released.is_set():
            self._wait_released()
        if outcome == "timeout":
            self._stop.wait(self.timeout_delay)
        if not self._stop.is_set():
            statuses = ["failed"] if outcome == "failed_webhook" else ["sent", "delivered", "read"]
            self._schedule(wamid, phone_number_id, digits, statuses)
        return Reply(200, {"messaging_product": "whatsapp",
                           "contacts": [{"input": to, "wa_id": digits}],
                           "messages": [{"id": wamid, "message_status": "accepted"}]})

    def _wait_released(self) -> None:
        with self._held_cond:
            self.held += 1
            self._held_cond.notify_all()
        try:
            while not self._released.wait(0.05):
                if self._stop.is_set():
                    break
        finally:
            with self._held_cond:
                self.held -= 1

    def _record(self, received: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(received)
            self._trim(self.requests)

    def _trim(self, items: list) -> None:
        if self.max_records and len(items) > self.max_records:
            del items[: len(items) - self.max_records]

    # -- webhooks -----------------------------------------------------------

    def status_payload(self, wamid: str, status: str, recipient: str,
                       phone_number_id: str) -> dict:
        """The body of a status webhook, as the Cloud API sends it."""
        item: dict[str, Any] = {"id": wamid, "status": status,
                                "timestamp": str(int(time.time())), "recipient_id": recipient}
        if status == "failed":
            item["errors"] = [{
                "code": 131047, "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours "
                                          "have passed since the customer last replied to "
                                          "this number."},
            }]
        else:
            item["conversation"] = {"id": secrets.token_hex(16),
                                    "origin": {"type": "utility"}}
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
        return {"object": "whatsapp_business_account", "entry": [{
            "id": self.business_account_id,
            "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": re.sub(r"\D", "", DISPLAY_PHONE_NUMBER),
                             "phone_number_id": phone_number_id},
                "statuses": [item]}}]}]}

    # One dispatcher thread and a small pool deliver every webhook, so a burst of sends
    # (the benchmark) does not start a thread per message. A message's next status is
    # scheduled only once the previous one is settled: each message's webhooks arrive in
    # order. A failed POST is retried later from the schedule, never blocking the pool.

    def _at(self, delay: float, job: Callable[[], None]) -> None:
        with self._schedule_cond:
            if self._stop.is_set():
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))
            if self._dispatcher is None:
                self._pool = ThreadPoolExecutor(self.webhook_workers,
                                                thread_name_prefix="whatsapp-fake-webhook")
                self._dispatcher = threading.Thread(target=self._dispatch,
                                                    name="whatsapp-fake-dispatcher", daemon=True)
                self._dispatcher.start()
            self._schedule_cond.notify()

    def _dispatch(self) -> None:
        while True:
            with self._schedule_cond:
                while not self._stop.is_set():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    if wait is not None and wait <= 0:
                        break
                    self._schedule_cond.wait(wait)
                if self._stop.is_set():
                    return
                job = heapq.heappop(self._heap)[2]
            try:
                self._pool.submit(job)
            except RuntimeError:  # the pool was shut down by close()
                return

    def _schedule(self, wamid: str, phone_number_id: str, recipient: str,
                  statuses: list[str]) -> None:
        remaining = iter(statuses)

        def next_status(delay: float) -> None:
            status = next(remaining, None)
            if status is not None:
                self._at(delay, lambda: self._emit(wamid, phone_number_id, recipient, status,
                                                   lambda: next_status(self.webhook_gap)))

        next_status(self.webhook_delay)

    def _emit(self, wamid: str, phone_number_id: str, recipient: str, status: str,
              then: Callable[[], None]) -> None:
        if self._stop.is_set():
            return
        body = json.dumps(self.status_payload(wamid, status, recipient, phone_number_id),
                          separators=(",", ":"), ensure_ascii=False).encode()
        webhook = Webhook(body, {"Content-Type": "application/json",
                                 "X-Hub-Signature-256": sign(body, self.app_secret),
                                 "User-Agent": "facebookexternalua"}, wamid, status)
        with self._lock:
            self.webhooks.append(webhook)
            self._trim(self.webhooks)
            manual = self.webhook_mode == "manual"
            if manual:
                self.pending.append(webhook)
        if manual or (self.on_webhook is None and not self.webhook_url):
            then()  # queued, or nowhere to send it (kept in .webhooks all the same)
        else:
            self._attempt(webhook, then)

    def _attempt(self, webhook: Webhook, then: Callable[[], None] | None = None) -> bool:
        """POST one webhook; on failure try again later, a few times, pausing longer each time."""
        if self._stop.is_set():
            return False
        webhook.attempts += 1
        try:
            answer = self._post(webhook)
        except Exception as exc:  # the receiver is down or broke: try again
            webhook.answers.append(f"{type(exc).__name__}: {exc}")
        else:
            webhook.answers.append(answer)
            if 200 <= answer < 300:
                webhook.delivered = True
                if then:
                    then()
                return True
        if then is None:  # manual mode: the caller sees the result
            return False
        if webhook.attempts < self.webhook_attempts:
            pause = self.webhook_backoff * (2 ** (webhook.attempts - 1))
            self._at(pause, lambda: self._attempt(webhook, then))
        else:
            log.warning("WhatsApp sandbox: webhook %s for %s not delivered: %s",
                        webhook.status, webhook.wamid, webhook.answers)
            then()  # the message's later statuses still go, as the real API's would
        return False

    def _post(self, webhook: Webhook) -> int:
        sink = self.on_webhook
        if sink is not None:
            answer = sink(webhook.body, dict(webhook.headers))
            if answer is None:
                return 200
            return int(getattr(answer, "status_code", answer))
        if not self.webhook_url:
            raise RuntimeError("no webhook URL configured")
        if self._http is None:
            import httpx

            # One client for every webhook: a new one per POST builds a TLS context each time.
            self._http = httpx.Client(timeout=5.0)
        response = self._http.post(self.webhook_url, content=webhook.body,
                                   headers=webhook.headers)
        return response.status_code
