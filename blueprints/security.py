"""HTTP security and caching headers for every response, and the over-long URL guard.

The header values live here, once; deploy/nginx.conf.sample repeats the same
Content-Security-Policy for what nginx serves itself.
"""

from __future__ import annotations

import hashlib
import os
from urllib.parse import quote

from flask import Flask, Response, current_app, request

# No inline script and no eval (htmx runs with allowEval off), scripts only
# from this origin; inline style attributes stay allowed for small layout touches.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
STRICT_TRANSPORT_SECURITY = "max-age=31536000; includeSubDomains"
NO_STORE = "no-store"
# Static URLs carry ?v=<content hash> (see _static_version), so a new file gets a new URL.
STATIC_VERSIONED = "public, max-age=31536000, immutable"
STATIC_UNVERSIONED = "public, max-age=86400"

# Responses anyone may cache: they hold nothing about a person. Everything
# else (the desk, the cart and checkout, the customer's order page and its
# proof files, error pages) is personal and must not stay in any cache.
PUBLIC_ENDPOINTS = frozenset({"static", "favicon", "store_logo", "storefront.index",
                              "media.product_image"})

# Longest URL (path plus query string, as sent) the app serves. The search box
# takes 100 characters (900 once a Chinese search is percent-encoded), so only
# a crafted or broken link comes near this. Gunicorn must let longer lines
# through for the app to answer them itself: --limit-request-line 0 behind nginx.
MAX_URL_LENGTH = 2048


def url_length() -> int:
    """Length of the request target as the client sent it (percent-encoded)."""
    length = len(quote(request.path))
    if request.query_string:
        length += 1 + len(request.query_string)
    # gunicorn and werkzeug's server also pass the target on as sent (the test
    # client puts only the path there): take whichever is longer.
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    return max(length, len(raw))


def refuse_overlong_url():
    """Answer a crafted or truncated-by-nobody URL with the styled 414 page."""
    if url_length() > MAX_URL_LENGTH:
        from werkzeug.exceptions import RequestURITooLarge

        raise RequestURITooLarge()
    return None


def set_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        # setdefault: a response with a stricter policy of its own keeps it.
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if current_app.config.get("SHOPDESK_ENV") == "production" and request.is_secure:
        headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    _set_cache_control(response)
    return response


def _set_cache_control(response: Response) -> None:
    endpoint = request.endpoint
    if endpoint == "static":
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = (
                STATIC_VERSIONED if request.args.get("v") else STATIC_UNVERSIONED)
        return
    if endpoint in PUBLIC_ENDPOINTS and response.status_code < 400:
        return
    if endpoint == "alerts.events":
        # An event stream is never stored anyway; "no-store" on a request made by
        # script would keep every desk page out of the browser's back/forward cache.
        response.headers["Cache-Control"] = "private, no-cache"
        return
    # Overrides send_file's "no-cache" and the like; keeps "private, no-store".
    if "no-store" not in response.headers.get("Cache-Control", ""):
        response.headers["Cache-Control"] = NO_STORE
    response.headers.pop("Expires", None)


_versions: dict[str, tuple[tuple[int, int], str]] = {}


def _static_version(endpoint: str, values: dict) -> None:
    """url_for('static', filename=...) gets ?v=<hash of the file>, so it can be cached for a year."""
    if endpoint != "static" or "v" in values or "filename" not in values:
        return
    path = os.path.join(current_app.static_folder or "", values["filename"])
    try:
        stat = os.stat(path)
    except OSError:
        return
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _versions.get(path)
    if cached is None or cached[0] != key:
        with open(path, "rb") as fh:
            cached = (key, hashlib.sha256(fh.read()).hexdigest()[:10])
        _versions[path] = cached
    values["v"] = cached[1]


def init_security(app: Flask) -> None:
    app.before_request(refuse_overlong_url)
    app.after_request(set_security_headers)
    app.url_defaults(_static_version)
