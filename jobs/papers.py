"""Bulk papers as one tracked job (issue 11): invoices, packing lists, labels or a pick
list for many orders, merged into one PDF under GENERATED_FOLDER, offered as the job's
download.

Rendering is the slow part (xhtml2pdf: tens of ms a page), and pure CPU, so above
``PARALLEL_MIN`` orders the ids are split into chunks rendered by ``WORKERS``
processes, one per core: this one and ``WORKERS - 1`` forked children. Each child has
its own app context and its own database connections (jobs.queue.job_app drops the
parent's pool after a fork). Every chunk is rendered to a file beside the result, and
this process appends the files in list order with pypdf (a page copy) as soon as each
one and those before it are done, reporting progress as chunks finish.

Idempotent: a rerun renders the same file again.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
import signal
import traceback
from collections.abc import Callable
from pathlib import Path

from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from domain.db import db
from domain.exports import matching_ids
from domain.i18n import N_
from domain.models import Order
from domain.search import OrderQuery
from jobs.exports import exporter_locale
from jobs.queue import finish_job, job_app, set_progress
from jobs.shipments import job_actor, record_result

WORKERS = 2  # the machine's cores
PARALLEL_MIN = 24  # fewer orders render faster in this process than forking costs
CHUNK = 25  # orders per chunk: small enough for steady progress, big enough to amortise

# The download's name per kind (a message id, translated in the staff member's language).
FILE_NAMES = {
    "invoice": N_("invoices"),
    "packing_list": N_("packing-lists"),
    "label": N_("labels"),
    "pick_list": N_("pick-list"),
}


def chunks(ids: list[int], size: int = CHUNK) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


# ---------------------------------------------------------------- the workers
#
# The parent renders too: a pool's parent only waited, and a third process of
# ~190 MB (the app, the fonts, xhtml2pdf) was summed peak RSS for nothing. Chunks are
# taken from a shared counter, so whoever is free takes the next one (no uneven split;
# the parent also merges between its chunks). Before forking, the parent loads what
# every render needs (fonts, templates) so the child shares those pages, and freezes
# the garbage collector: a full collection writes into every object's header, which in
# a forked child copies nearly every inherited page (and costs ~0.17 s a collection
# over the ~235,000 objects of the app).


def _start_child() -> None:
    """In the forked child: the job app's context, fresh connections."""
    # The parent may be an RQ worker whose SIGTERM/SIGINT handlers ask it to finish the
    # job first; a child keeping them would outlive the parent's terminate().
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    job_app().app_context().push()  # job_app() replaces the inherited DB pool


def _render_to(kind: str, ids: list[int], locale: str | None, path: str) -> str | None:
    """Render one chunk to ``path``; None when none of its orders exists any more
    (deleted since they were selected)."""
    from domain.documents import render_pdf

    try:
        data = render_pdf(kind, ids, locale=locale)
    except LookupError:
        return None
    Path(path).write_bytes(data)
    return path


def _take(counter, total: int) -> int | None:
    """The next chunk nobody has taken yet, or None when all are taken."""
    with counter.get_lock():
        index = counter.value
        if index >= total:
            return None
        counter.value = index + 1
    return index


def _child_loop(counter, results, kind: str, parts: list[list[int]], locale: str | None,
                paths: list[str]) -> None:
    """A forked child: take chunks until none is left; each result (index, path or
    None, error or None) goes to the parent."""
    _start_child()
    while (index := _take(counter, len(parts))) is not None:
        try:
            results.put((index, _render_to(kind, parts[index], locale, paths[index]), None))
        except BaseException:  # noqa: BLE001 - the parent raises it as the job's error
            results.put((index, None, traceback.format_exc(limit=20)))
            return
        finally:
            db.session.remove()


def _warm(kind: str) -> None:
    """What every render loads once per process, loaded before forking (shared pages)."""
    import pypdf  # noqa: F401
    from xhtml2pdf import pisa  # noqa: F401

    from domain.documents.fonts import ensure_fonts

    ensure_fonts()
    for name in ("base", kind):
        current_app.jinja_env.get_template(f"documents/{name}.html")


class _Merger:
    """Appends the chunks' files to one PDF in list order, as soon as each one and all
    before it are done (a page copy: pypdf does not render anything again)."""

    def __init__(self, count: int):
        from pypdf import PdfWriter

        self.writer = PdfWriter()
        self.finished: dict[int, str | None] = {}
        self.count = count
        self.next = 0

    def add(self, index: int, part_path: str | None) -> None:
        self.finished[index] = part_path

    def append_ready(self) -> None:
        from pypdf import PdfReader

        while self.next < self.count and self.next in self.finished:
            part_path = self.finished[self.next]
            if part_path is not None:
                self.writer.append(PdfReader(part_path))
            self.next += 1

    def write(self, path: Path) -> int:
        self.append_ready()
        with open(path, "wb") as out:
            self.writer.write(out)
        return len(self.writer.pages)


def render_merged(kind: str, ids: list[int], path: Path, *, locale: str | None = None,
                  progress: Callable[[int], None] | None = None,
                  workers: int = WORKERS) -> int:
    """Render ``kind`` for ``ids`` into one PDF at ``path``, in order; returns its pages.
    With enough orders, ``workers - 1`` forked children render chunks beside this
    process."""
    parts = chunks(ids)
    paths = [f"{path}.part{i}" for i in range(len(parts))]
    merger = _Merger(len(parts))
    done_orders = 0
    children: list = []

    def finished(index: int, part_path: str | None) -> None:
        nonlocal done_orders
        merger.add(index, part_path)
        done_orders += len(parts[index])
        if progress:
            progress(done_orders)

    parallel = workers > 1 and len(ids) >= PARALLEL_MIN and len(parts) > 1
    if len(parts) > 1:
        gc.collect()
        gc.freeze()  # until the end: see the comment above _start_child
    try:
        if not parallel:
            for index, part in enumerate(parts):
                finished(index, _render_to(kind, part, locale, paths[index]))
                merger.append_ready()
            return merger.write(path)
        _warm(kind)
        db.session.remove()  # no connection or snapshot carried into the children
        context = multiprocessing.get_context("fork")
        counter = context.Value("i", 0)
        results = context.Queue()
        for _ in range(min(workers, len(parts)) - 1):
            child = context.Process(target=_child_loop, daemon=True,
                                    args=(counter, results, kind, parts, locale, paths))
            child.start()
            children.append(child)
        while (index := _take(counter, len(parts))) is not None:
            finished(index, _render_to(kind, parts[index], locale, paths[index]))
            _drain(results, children, finished, block=False)
            merger.append_ready()
        while len(merger.finished) < len(parts):
            _drain(results, children, finished, block=True)
            merger.append_ready()
        for child in children:
            child.join()
        return merger.write(path)
    finally:
        gc.unfreeze()
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join()
        for part_path in paths:
            try:
                os.unlink(part_path)
            except OSError:
                pass


def _drain(results, children, finished, *, block: bool) -> None:
    """Hand the children's results to ``finished``; with ``block``, wait for at least
    one. A child's error, or a child gone without its result, fails the whole render."""
    while True:
        try:
            index, part_path, error = results.get(timeout=0.5) if block else results.get_nowait()
        except queue.Empty:
            if not block:
                return
            if not any(child.is_alive() for child in children) and results.empty():
                codes = [child.exitcode for child in children]
                raise RuntimeError(f"A papers worker stopped before its chunk was done "
                                   f"(exit codes {codes}).") from None
            continue
        if error is not None:
            raise RuntimeError(f"A papers worker failed:\n{error}")
        finished(index, part_path)
        block = False  # one arrived: take the rest without waiting


# ---------------------------------------------------------------- the job


def _eligible_labels(ids: list[int], locale: str) -> tuple[list[int], list[dict[str, str]]]:
    """The orders that can have a label, and the others with why (in ``locale``)."""
    from domain.documents import label_refusal

    orders = {o.id: o for o in db.session.scalars(select(Order).where(Order.id.in_(ids)))}
    eligible, skipped = [], []
    for order_id in ids:
        order = orders.get(order_id)
        refusal = label_refusal(order) if order is not None else "Order not found."
        if refusal is None:
            eligible.append(order_id)
        else:
            with force_locale(locale):
                skipped.append({"number": order.number if order is not None else "—",
                                "reason": gettext(refusal)})
    return eligible, skipped


def papers_job(job_id: str, kind: str, order_ids: list[int] | None = None,
               query_args: list[tuple[str, str]] | None = None) -> str | None:
    """One merged PDF of ``kind`` for the given ids (or every order matching
    ``query_args``), in list order; labels only for eligible orders."""
    from domain.documents import KINDS

    if kind not in KINDS:
        raise ValueError(f"Unknown kind of papers {kind!r}")
    if order_ids is None:
        order_ids = matching_ids(OrderQuery.from_args(MultiDict(query_args or [])))
    locale = exporter_locale(job_id)
    skipped: list[dict[str, str]] = []
    if kind == "label":
        order_ids, skipped = _eligible_labels(order_ids, locale)
    set_progress(job_id, 0, len(order_ids))
    if not order_ids:
        record_result(job_id, 0, skipped)  # nothing to print: no file, the reasons shown
        return None
    folder = Path(current_app.config["GENERATED_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"papers-{job_id}.pdf"
    if kind == "pick_list":
        # One list across all the orders, in the staff member's language.
        from domain.documents import render_pdf

        path.write_bytes(render_pdf(kind, order_ids, locale=locale))
        set_progress(job_id, len(order_ids))
    else:
        # Each order's paper in the order's own language (render_pdf's default).
        render_merged(kind, order_ids, path,
                      progress=lambda n: set_progress(job_id, n))
    from domain.documents import record_printed

    record_printed(kind, order_ids, actor=job_actor(job_id))  # "invoice printed", per order
    record_result(job_id, len(order_ids), skipped)
    with force_locale(locale):
        name = gettext(FILE_NAMES[kind])
    finish_job(job_id, str(path), f"{name}-{job_id[:8]}.pdf")
    return str(path)

