"""gzip for text responses, without handing BREACH an oracle (issue 14: page weight).

The orders list is about 65 KB of HTML for 50 rows and a few KB of gzip. Compressing
pages that carry a secret (the CSRF token, an order's secret link) next to text an
attacker can choose (a search term in the URL) lets someone who watches the encrypted
traffic guess the secret from response sizes (BREACH), which is why nginx compresses
only static files (deploy/nginx.conf.sample). The attack needs the victim's browser to
send many such requests for the attacker, from another site. So a page is compressed
only when the browser says the request came from this site itself
(``Sec-Fetch-Site: same-origin``) or from the person typing the address or following
a bookmark (``none``); requests from other sites, and browsers that don't send the
header, get the page as before. Static files hold no secrets: always compressed.

A WSGI middleware, so it runs after every Flask hook (headers, no-store) and sees the
final body; streams (server-sent events) and non-text types pass through untouched.
"""

from __future__ import annotations

import gzip

TEXT_TYPES = ("text/html", "text/css", "text/plain", "application/javascript",
              "text/javascript", "application/json", "image/svg+xml")
STATIC_PREFIX = "/static/"
TRUSTED_SITES = ("same-origin", "none")
MIN_SIZE = 1024  # below this gzip's header costs more than it saves
LEVEL = 6


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    drop = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in drop]


class Compress:
    def __init__(self, app, *, min_size: int = MIN_SIZE, level: int = LEVEL):
        self.app, self.min_size, self.level = app, min_size, level

    def __call__(self, environ, start_response):
        if "gzip" not in environ.get("HTTP_ACCEPT_ENCODING", "").lower() \
                or environ.get("REQUEST_METHOD") == "HEAD":
            return self.app(environ, start_response)
        static = environ.get("PATH_INFO", "").startswith(STATIC_PREFIX)
        trusted = static or environ.get("HTTP_SEC_FETCH_SITE", "") in TRUSTED_SITES
        held: dict = {}

        def hold(status, headers, exc_info=None):
            held.update(status=status, headers=list(headers), exc_info=exc_info)
            return held.setdefault("chunks", []).append  # the legacy write() callable

        body = self.app(environ, hold)
        status, headers = held["status"], held["headers"]
        kind = (_header(headers, "Content-Type") or "").split(";")[0].strip().lower()
        if not status.startswith("200") or kind not in TEXT_TYPES \
                or _header(headers, "Content-Encoding"):
            start_response(status, headers, held["exc_info"])
            return self._replay(held, body)
        vary = ", ".join(filter(None, [_header(headers, "Vary"), "Accept-Encoding"]
                                + ([] if static else ["Sec-Fetch-Site"])))
        headers = _without(headers, "Vary") + [("Vary", vary)]
        if not trusted:
            start_response(status, headers, held["exc_info"])
            return self._replay(held, body)
        try:
            data = b"".join(held.get("chunks", [])) + b"".join(body)
        finally:
            if hasattr(body, "close"):
                body.close()
        if len(data) < self.min_size:
            start_response(status, headers, held["exc_info"])
            return [data]
        packed = gzip.compress(data, compresslevel=self.level, mtime=0)
        headers = _without(headers, "Content-Length") + [
            ("Content-Encoding", "gzip"), ("Content-Length", str(len(packed)))]
        etag = _header(headers, "ETag")
        if etag:  # another representation: its own validator
            headers = _without(headers, "ETag") + [("ETag", etag.rstrip('"') + '-gz"')]
        start_response(status, headers, held["exc_info"])
        return [packed]

    @staticmethod
    def _replay(held: dict, body):
        chunks = held.get("chunks")
        if not chunks:
            return body
        return _Chained(chunks, body)


class _Chained:
    """What the app wrote through write() first, then its iterable; closes it."""

    def __init__(self, first: list[bytes], rest):
        self.first, self.rest = first, rest

    def __iter__(self):
        yield from self.first
        yield from self.rest

    def close(self):
        if hasattr(self.rest, "close"):
            self.rest.close()


def init_compression(app) -> None:
    app.wsgi_app = Compress(app.wsgi_app)
