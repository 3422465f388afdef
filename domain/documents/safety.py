"""What a paper may read while it renders: the store's own files, nothing else.

Every value in a paper is escaped (Jinja autoescape on templates/documents/), so a
customer named ``<img src="http://…">`` is printed, not fetched. These are the two
gates behind that, in case markup ever reaches the renderer anyway:

* ``link_callback``: xhtml2pdf asks it for every <img>, <link>, CSS url(), @import and
  @font-face. It answers a local file under the instance folder or the uploads folder
  (the logo) and refuses everything else: any scheme (http, https, file, data, ftp…),
  ``..`` escapes, symlinks out, folders and missing files. A refusal is answered with
  an empty ``data:`` URI, because xhtml2pdf keeps the original address when the
  callback returns nothing.
* ``resource_policy``: xhtml2pdf's own fetcher policy, for the paths that do not go
  through the callback: no network at all, local reads confined to the same folders,
  and size, count and time limits on the whole render.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from flask import current_app
from xhtml2pdf.config.resources import ResourceAccessPolicy

REFUSED = "data:,"  # an empty resource: xhtml2pdf draws nothing for it


def allowed_roots() -> tuple[Path, ...]:
    """The folders a paper may read from: the instance folder and the uploads folder
    (which tests and some deployments put elsewhere)."""
    roots = [Path(current_app.instance_path)]
    upload = current_app.config.get("UPLOAD_FOLDER")
    if upload:
        roots.append(Path(upload))
    resolved = []
    for root in roots:
        try:
            resolved.append(root.resolve())
        except OSError:  # pragma: no cover - an unreadable folder allows nothing
            continue
    return tuple(resolved)


def allowed_file(uri: object, roots: tuple[Path, ...]) -> Path | None:
    """The resolved file ``uri`` names if a paper may read it, else None."""
    if not isinstance(uri, str | Path):
        return None
    text = str(uri).strip()
    if not text or "\x00" in text:
        return None
    if isinstance(uri, str) and urlsplit(text).scheme:
        return None  # http:, https:, file:, data:, ftp:, and c:/… alike
    path = Path(text)
    if not path.is_absolute():
        return None  # relative to what? the templates only ever name absolute files
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_file():
        return None
    if any(resolved == root or resolved.is_relative_to(root) for root in roots):
        return resolved
    return None


def make_link_callback(roots: tuple[Path, ...]) -> Callable[[str, str | None], str]:
    """xhtml2pdf's link_callback(uri, rel): the file's path, or REFUSED."""

    def link_callback(uri, rel=None):  # noqa: ARG001 - rel is ignored: no relative paths
        found = allowed_file(uri, roots)
        return str(found) if found is not None else REFUSED

    return link_callback


def resource_policy(roots: tuple[Path, ...]) -> ResourceAccessPolicy:
    """No network, local reads only under ``roots``, every limit on (xhtml2pdf's
    policy for HTML you did not write)."""
    base, *extra = roots or (None,)
    return ResourceAccessPolicy.server(
        base_dir=base, extra_roots=tuple(extra), allow_remote=False,
        allow_private_networks=False, allowed_hosts=frozenset(),
        # A merged bulk PDF of a thousand invoices is one render.
        max_render_seconds=600, max_document_bytes=200 * 1024 * 1024, max_resources=20,
    )
