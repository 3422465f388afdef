"""Serving a stored payment proof: only through a route that checked who asks."""

from __future__ import annotations

from flask import abort, send_file

from domain.errors import DomainError
from domain.proofs import proof_download


def proof_response(order, *, thumbnail: bool = False):
    """The proof file with headers that keep browsers from running or sniffing it."""
    try:
        path, content_type, name, inline = proof_download(order, thumbnail=thumbnail)
    except DomainError:
        abort(404)
    response = send_file(path, mimetype=content_type, as_attachment=not inline,
                         download_name=name, max_age=0, conditional=True, etag=True)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
