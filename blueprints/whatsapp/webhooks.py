"""The Cloud API's webhooks: the subscribe challenge and signed delivery statuses.

Public (Meta has no session and no CSRF token): the GET proves itself with the verify
token shown on the settings page, the POST with X-Hub-Signature-256 over the raw body,
keyed with the app secret. Anything else gets 403 and changes nothing."""

from __future__ import annotations

import hmac
import json
import logging

from flask import Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import csrf
from blueprints.whatsapp.routes import bp
from domain.db import db
from domain.errors import DomainError
from domain.models import WhatsAppConfig
from domain.notify import whatsapp, whatsapp_config, whatsapp_delivery

log = logging.getLogger(__name__)

# Status webhooks are a few kB; anything near this is not Meta.
MAX_BODY = 1024 * 1024


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@bp.route("/webhook", methods=["GET", "POST"])
@csrf.exempt
def webhook():
    """GET: answer Meta's subscribe challenge. POST: record delivery statuses."""
    if request.method == "GET":
        return _challenge()
    return _statuses()


def _challenge() -> Response:
    config = db.session.get(WhatsAppConfig, 1)  # read, never created by a stranger's call
    expected = (config.verify_token if config else "") or ""
    given = request.args.get("hub.verify_token", "")
    if (request.args.get("hub.mode") != "subscribe" or not expected
            or not hmac.compare_digest(given.encode(), expected.encode())):
        return _text("Forbidden", 403)
    return _text(request.args.get("hub.challenge", ""), 200)


def _statuses() -> Response:
    if (request.content_length or 0) > MAX_BODY:
        return _text("Too large", 413)
    request.max_content_length = MAX_BODY  # a chunked body without a length, too
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return _text("Too large", 413)
    try:
        secret = whatsapp_config.app_secret() or ""
    except DomainError:  # unreadable after a SECRET_KEY change: nothing can be verified
        secret = ""
    if not secret or not whatsapp.verify_signature(
            body, request.headers.get("X-Hub-Signature-256"), secret):
        log.warning("whatsapp webhook refused: bad or missing signature")
        return _text("Forbidden", 403)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _text("Bad JSON", 400)
    if not isinstance(payload, dict):
        return _text("Bad JSON", 400)
    whatsapp_delivery.record_status_updates(payload)
    return _text("OK", 200)
