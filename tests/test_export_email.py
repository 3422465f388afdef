"""Export to email (issue 9, SPEC §7): the view, the job on a real RQ worker, the
email with a real .xlsx attachment or a link, the expiring desk download, and
delivery to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import ast
import io
import os
import re
import socket
import threading
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import PASSWORD, Client
from openpyxl import load_workbook
from sqlalchemy import func, select

from domain.accounts import create_user
from domain.db import db
from domain.models import Job, Order, OutboxMessage, User, utcnow
from domain.notify.export_mail import (
    ATTACH_LIMIT_BYTES,
    DOWNLOAD_KEPT,
    ExportFileGone,
    render_export_email,
)
from domain.notify.transport import MailSettings, build_mime
from jobs import queue as job_queue
from jobs.exports import export_and_email_job, remove_expired_exports

pytest_plugins = ["jobs_fixtures"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
URL = "/orders/export/email"


def fresh(model, id_):
    db.session.rollback()  # end the read snapshot: the worker wrote in its own session
    return db.session.get(model, id_)


def export_messages() -> list[OutboxMessage]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "export_ready")))


def numbers_in_workbook(data: bytes) -> list[str]:
    wb = load_workbook(io.BytesIO(data), read_only=True)
    # the first sheet is Orders (訂單 in Chinese)
    return [row[0] for row in wb.worksheets[0].iter_rows(min_row=2, values_only=True)]


def page_text(client, response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)
    return unescape(client.get(response.headers["Location"]).get_data(as_text=True))


def the_job() -> Job:
    db.session.rollback()
    return db.session.scalar(select(Job).where(Job.kind == "export_email"))


def finished_export(user, order_ids, *, app) -> tuple[Job, OutboxMessage]:
    """A tracked export-to-email job run to the end by the job function itself (the
    worker tests below run the same function on a real RQ worker)."""
    user_id = user.id
    db.session.rollback()  # a fresh snapshot: a write on a stale one would be refused
    user = db.session.get(User, user_id)
    job = Job(id=f"job-{user.id}-{len(order_ids)}-{utcnow().timestamp()}", kind="export_email",
              status="running", total=len(order_ids), params={}, user_id=user.id,
              created_at=utcnow())
    db.session.add(job)
    db.session.commit()
    export_and_email_job(job.id, order_ids=order_ids)
    db.session.rollback()
    message = db.session.scalar(select(OutboxMessage).where(
        OutboxMessage.event_key == f"export:{job.id}"))
    return db.session.get(Job, job.id), message


def parse(message: OutboxMessage, rendered):
    mime = build_mime(message, rendered, sender="shop@example.hk", sender_name="Cookie Lab")
    return message_from_bytes(mime.as_bytes(), policy=policy.default)


def attachments_of(parsed) -> list:
    return [part for part in parsed.iter_attachments()]


# ------------------------------------------------------------------ the view


def test_email_me_the_file_queues_the_export_and_says_where_it_goes(
        app, staff, staff_client, make_order, redis_conn):
    a, _b, c = make_order(), make_order(name="Amy"), make_order(name="Ben")
    response = staff_client.post(URL, {"ids": [a.id, c.id], "q": "", "scope": "selected"})
    page = page_text(staff_client, response)
    assert "We'll email the file to staff@shop.test when it is ready." in page
    job = the_job()
    assert job.user_id == staff.id and job.status == "pending" and job.total == 2
    assert job.params["kwargs"]["order_ids"] == repr([a.id, c.id])
    # one RQ job waits, for the tracked row
    assert job_queue.get_queue().job_ids == [job.id]


def test_htmx_answer_replaces_the_status_in_the_bulk_bar(app, staff_client, make_order,
                                                         redis_conn):
    order = make_order()
    response = staff_client.post(URL, {"ids": [order.id], "scope": "selected"}, htmx=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="export-email-status"' in html and "<html" not in html
    assert "We&#39;ll email the file to staff@shop.test when it is ready." in html
    assert the_job() is not None


def test_email_all_matching_means_the_query(app, staff_client, make_order, redis_conn):
    pending = make_order(name="陳大文")
    paid = [make_order(name=f"Paid {i}", payment="credit_card") for i in range(3)]
    response = staff_client.post(URL, {"scope": "matching", "status": "processing",
                                       "ids": [pending.id]})
    assert response.status_code == 302 and "status=processing" in response.headers["Location"]
    queued = ast.literal_eval(the_job().params["kwargs"]["order_ids"])
    assert sorted(queued) == sorted(o.id for o in paid)


@pytest.mark.parametrize("data,message", [
    ({"ids": []}, "Select at least one order"),
    ({"ids": ["abc"]}, "selection is not valid"),
    ({"ids": ["1 OR 1=1"]}, "selection is not valid"),
    ({"ids": ["9" * 20]}, "selection is not valid"),
    ({"scope": "everything", "ids": ["1"]}, "Choose “Export selected” or “Export all”."),
    ({"scope": "matching", "q": "nobody-matches-this"}, "No orders match; nothing to export."),
])
@pytest.mark.parametrize("htmx", [False, True])
def test_refused_selection_says_why_and_queues_nothing(app, staff_client, make_order, redis_conn,
                                                       data, message, htmx):
    make_order()
    response = staff_client.post(URL, data, htmx=htmx)
    if htmx:
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    else:
        assert message in page_text(staff_client, response)
    assert the_job() is None and job_queue.get_queue().count == 0


def test_needs_csrf_and_login(app, staff_client, client, make_order, redis_conn):
    order = make_order()
    assert staff_client.post(URL, {"ids": [order.id]}, csrf=False).status_code == 400
    assert staff_client.post(URL, {"ids": [order.id]}, csrf=False, htmx=True).status_code == 400
    # signed out, with a valid token from the sign-in page: sent to sign in
    token = Client.token_from(client.http.get("/login").get_data(as_text=True))
    response = client.http.post(URL, data={"ids": [order.id], "csrf_token": token})
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert the_job() is None


def test_the_address_is_the_signed_in_staff_member_s_own(app, staff, staff_client, make_order,
                                                         redis_conn):
    order = make_order()
    staff_client.post(URL, {"ids": [order.id], "email": "thief@evil.test",
                            "recipient": "thief@evil.test", "user_id": "1"})
    assert the_job().user_id == staff.id


def test_queue_down_is_a_clear_refusal(app, staff_client, make_order):
    order = make_order()
    staff_client.csrf()  # fetched before Redis goes away
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    app.extensions.pop(job_queue._EXTENSION, None)
    try:
        response = staff_client.post(URL, {"ids": [order.id]}, htmx=True)
    finally:
        app.extensions.pop(job_queue._EXTENSION, None)
    assert response.status_code == 422
    assert "job queue is not reachable" in response.get_data(as_text=True)
    assert the_job().status == "failed"


def test_the_list_has_the_button_in_the_bulk_form(staff_client, make_order):
    make_order()
    html = staff_client.get("/orders").get_data(as_text=True)
    button = re.search(r'<button[^>]*id="export-email"[^>]*>', html, re.S).group(0)
    assert 'formaction="/orders/export/email"' in button and 'hx-post="/orders/export/email"' in button
    assert 'name="scope"' in button and "Email me the file" in html
    assert re.search(r'<script src="/static/js/export_email.js\?v=\w+" defer></script>', html)


# ------------------------------------------------------------------ the job on a real worker


def test_job_on_a_real_worker_writes_one_message_even_when_run_twice(
        app, staff, staff_client, make_order, redis_conn, run_worker):
    orders = [make_order(name=f"Customer {i}") for i in range(3)]
    staff_client.post(URL, {"ids": [o.id for o in orders]})
    job_id = the_job().id
    assert run_worker()

    job = fresh(Job, job_id)
    assert job.status == "done" and job.finished_at is not None and job.error == ""
    with open(job.result_path, "rb") as f:
        assert sorted(numbers_in_workbook(f.read())) == sorted(o.number for o in orders)
    [message] = export_messages()
    assert (message.event_key, message.recipient, message.audience, message.user_id) == (
        f"export:{job_id}", "staff@shop.test", "staff", staff.id)
    assert message.params == {"job_id": job_id} and message.status == "pending"

    # The same RQ job delivered again: the done row short-cuts it.
    queue = job_queue.get_queue()
    first_finish = job.finished_at
    queue.enqueue(job_queue.run_tracked_job, args=(job_id, export_and_email_job),
                  kwargs={"order_ids": [o.id for o in orders]})
    assert run_worker()
    assert fresh(Job, job_id).finished_at == first_finish and len(export_messages()) == 1
    # And a rerun of the work itself (a worker killed after the export committed but
    # before RQ heard of it): the file is written again, the message is not.
    db.session.get(Job, job_id).status = "running"
    db.session.commit()
    queue.enqueue(job_queue.run_tracked_job, args=(job_id, export_and_email_job),
                  kwargs={"order_ids": [o.id for o in orders]})
    assert run_worker()
    job = fresh(Job, job_id)
    assert job.status == "done" and job.finished_at > first_finish
    assert len(export_messages()) == 1
    assert db.session.scalar(select(func.count(OutboxMessage.id)).where(
        OutboxMessage.event_key.like("export:%"))) == 1


def test_deactivated_staff_member_gets_no_mail(app, staff, make_order):
    order = make_order()
    staff_row = db.session.get(User, staff.id)
    staff_row.active = False
    db.session.commit()
    job, message = finished_export(staff_row, [order.id], app=app)
    assert job.status == "done" and message is None


# ------------------------------------------------------------------ the email


@pytest.mark.parametrize("locale,subject,greeting", [
    ("en", "Your order export is ready — ", "Your export of 2 orders is attached to this email."),
    ("zh_Hant_HK", "你的訂單匯出檔已準備好 — ", "已附上你匯出的 2 張訂單。"),
])
def test_small_export_is_attached_as_a_real_workbook(app, staff, make_order, locale, subject,
                                                     greeting):
    orders = [make_order(), make_order(name="Amy")]
    numbers = sorted(o.number for o in orders)
    user = db.session.get(User, staff.id)
    user.locale = locale
    db.session.commit()
    job, message = finished_export(user, [o.id for o in orders], app=app)
    rendered = render_export_email(message)
    assert rendered.subject.startswith(subject)
    parsed = parse(message, rendered)
    assert parsed["To"] == "staff@shop.test"
    [attachment] = attachments_of(parsed)
    assert attachment.get_content_type() == XLSX
    assert attachment.get_filename() == job.result_name and job.result_name.endswith(".xlsx")
    data = attachment.get_content()
    with open(job.result_path, "rb") as f:
        assert data == f.read()
    assert sorted(numbers_in_workbook(data)) == numbers
    # the headers follow the staff member's language too (the export job's rule)
    sheet = load_workbook(io.BytesIO(data), read_only=True)["Orders" if locale == "en" else "訂單"]
    header = next(sheet.iter_rows(values_only=True))
    assert header[0] == ("Order number" if locale == "en" else "訂單編號")
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert greeting in text and greeting in html
    assert "/download" not in text and "/download" not in html  # attached: no link needed


def test_store_language_when_the_staff_member_has_none(app, staff, make_order):
    from domain.store import get_settings

    get_settings().language = "zh_Hant_HK"
    db.session.commit()
    job, message = finished_export(db.session.get(User, staff.id), [make_order().id], app=app)
    assert render_export_email(message).subject.startswith("你的訂單匯出檔已準備好")


@pytest.mark.parametrize("locale,expiry,size_words", [
    # Times are written the same in both languages, with their zone (issue 13).
    ("en", "2030-03-11 10:00 HKT", "too large to attach"),
    ("zh_Hant_HK", "2030-03-11 10:00 HKT", "太大，無法附上"),
])
def test_big_export_is_linked_not_attached_with_its_expiry(app, staff, make_order, locale,
                                                           expiry, size_words):
    app.config["EXPORT_MAIL_ATTACH_LIMIT"] = 100  # bytes: any workbook is "big"
    app.config["PUBLIC_URL"] = "https://desk.cookielab.hk"
    user = db.session.get(User, staff.id)
    user.locale = locale
    db.session.commit()
    job, message = finished_export(user, [make_order().id], app=app)
    db.session.get(Job, job.id).finished_at = datetime(2030, 3, 4, 2, 0)  # 10:00 in HK
    db.session.commit()
    rendered = render_export_email(message)
    assert rendered.attachments == []
    parsed = parse(message, rendered)
    assert attachments_of(parsed) == []
    link = f"https://desk.cookielab.hk/jobs/{job.id}/download"
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert link in text and f'href="{link}"' in html
    assert expiry in text and expiry in html
    assert size_words in text and "staff@shop.test" in text


def test_default_limit_is_ten_megabytes(app):
    assert ATTACH_LIMIT_BYTES == 10 * 1024 * 1024
    assert DOWNLOAD_KEPT == timedelta(days=7)


def test_staff_name_is_escaped_in_the_html(app, make_order):
    user = create_user(email="hacker@shop.test", password=PASSWORD, role="staff",
                       name='<script>alert("x")</script><b>')
    job, message = finished_export(user, [make_order().id], app=app)
    rendered = render_export_email(message)
    assert "<script>alert" not in rendered.html and "&lt;script&gt;alert" in rendered.html


def test_a_vanished_file_is_a_clear_render_error(app, staff, make_order):
    import os

    job, message = finished_export(db.session.get(User, staff.id), [make_order().id], app=app)
    os.unlink(job.result_path)
    with pytest.raises(ExportFileGone, match="is gone"):
        render_export_email(message)


# ------------------------------------------------------------------ the desk download


def test_download_link_works_for_its_owner_then_expires(app, staff, staff_client, make_order):
    app.config["EXPORT_MAIL_ATTACH_LIMIT"] = 100
    order = make_order()
    number = order.number
    job, message = finished_export(db.session.get(User, staff.id), [order.id], app=app)
    link = re.search(r"https?://\S+/download", render_export_email(message).text).group(0)
    path = urlsplit(link).path
    response = staff_client.get(path)
    assert response.status_code == 200 and response.mimetype == XLSX
    assert "attachment" in response.headers["Content-Disposition"]
    assert numbers_in_workbook(response.data) == [number]

    # six days and 23 hours later: still there
    db.session.get(Job, job.id).finished_at = utcnow() - DOWNLOAD_KEPT + timedelta(hours=1)
    db.session.commit()
    assert staff_client.get(path).status_code == 200
    # seven days after it finished: gone, and says so
    db.session.get(Job, job.id).finished_at = utcnow() - DOWNLOAD_KEPT - timedelta(minutes=1)
    db.session.commit()
    response = staff_client.get(path)
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "This download expired" in html and "kept for 7 days" in html
    assert "Export the orders again" in html
    progress = staff_client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "This download expired" in progress and "/download" not in progress


def test_download_is_refused_to_another_staff_member(app, staff, make_order):
    job, _message = finished_export(db.session.get(User, staff.id), [make_order().id], app=app)
    other = create_user(email="other@shop.test", password=PASSWORD, role="staff", name="Other")
    other_client = Client(app).login(other)
    assert other_client.get(f"/jobs/{job.id}/download").status_code == 404
    assert other_client.get(f"/jobs/{job.id}").status_code == 404
    # nor to anyone signed out
    response = Client(app).get(f"/jobs/{job.id}/download")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("job_id", ["../../etc/passwd", "x" * 37, "%00", "1 OR 1=1"])
def test_crafted_job_ids_are_not_found(staff_client, job_id):
    assert staff_client.get(f"/jobs/{job_id}/download").status_code == 404


def test_sweep_share_deletes_expired_files_only(app, staff, make_order):
    import os

    user = db.session.get(User, staff.id)
    old, _m1 = finished_export(user, [make_order().id], app=app)
    old_id, old_path = old.id, old.result_path
    new, _m2 = finished_export(user, [make_order().id], app=app)
    new_id, new_path = new.id, new.result_path
    db.session.get(Job, old_id).finished_at = utcnow() - DOWNLOAD_KEPT - timedelta(minutes=1)
    db.session.commit()
    assert remove_expired_exports() == 1
    assert not os.path.exists(old_path) and os.path.exists(new_path)
    assert fresh(Job, old_id).result_path is None and fresh(Job, new_id).result_path == new_path
    assert remove_expired_exports() == 0  # nothing left to do: a cheap no-op every minute
    client = Client(app).login(db.session.get(User, staff.id))
    assert client.get(f"/jobs/{old_id}/download").status_code == 410


def test_sweep_never_deletes_outside_the_generated_folder(app, staff, tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    db.session.add(Job(id="crafted", kind="export_email", status="done", total=0, params={},
                       user_id=staff.id, result_path=str(outside), result_name="x.xlsx",
                       created_at=utcnow(), finished_at=utcnow() - timedelta(days=30)))
    db.session.commit()
    # nor touches other jobs' files (a backup archive is the backups page's business)
    backup = Path(app.config["GENERATED_FOLDER"]) / "backup.tar.gz"
    backup.parent.mkdir(parents=True, exist_ok=True)
    backup.write_text("archive")
    db.session.add(Job(id="backup", kind="backup", status="done", total=0, params={},
                       user_id=staff.id, result_path=str(backup), result_name="b.tar.gz",
                       created_at=utcnow(), finished_at=utcnow() - timedelta(days=30)))
    db.session.commit()
    assert remove_expired_exports() == 0
    assert outside.read_text() == "keep me" and backup.read_text() == "archive"
    assert fresh(Job, "backup").result_path == str(backup)


# ------------------------------------------------------------------ delivery over SMTP


class _Inbox:
    def __init__(self):
        self.envelopes = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    with socket.socket() as probe:  # a free loopback port (Controller checks it by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def _port(controller) -> int:
    return controller.port


def test_the_workbook_arrives_intact_over_smtp(app, staff, make_order, smtp_server, tmp_path):
    from domain.notify.delivery import deliver_due

    controller, inbox = smtp_server
    orders = [make_order(name="陳大文"), make_order(name="Amy")]
    numbers = sorted(o.number for o in orders)
    job, message = finished_export(db.session.get(User, staff.id), [o.id for o in orders], app=app)
    settings = MailSettings(host="127.0.0.1", port=_port(controller), security="none",
                            sender="shop@example.hk")
    counts = deliver_due(settings, tmp_path / "mail")
    # (the two orders' customer emails travel too)
    assert counts["sent"] == 3 and counts["failed"] == counts["dead"] == 0, counts
    [envelope] = [e for e in inbox.envelopes if e.rcpt_tos == ["staff@shop.test"]]
    parsed = message_from_bytes(envelope.original_content, policy=policy.default)
    assert parsed["Subject"].startswith("Your order export is ready")
    [attachment] = attachments_of(parsed)
    assert attachment.get_content_type() == XLSX and attachment.get_filename() == job.result_name
    with open(job.result_path, "rb") as f:
        assert attachment.get_content() == f.read()
    assert sorted(numbers_in_workbook(attachment.get_content())) == numbers
    assert fresh(OutboxMessage, message.id).status == "sent"
    # delivered once: a second pass finds nothing due
    assert deliver_due(settings, tmp_path / "mail")["sent"] == 0 and len(inbox.envelopes) == 3


# ------------------------------------------------------------------ in the browser

SHOTS = Path(os.environ.get("SHOPDESK_EXPORT_SHOTS", "/tmp/shots/export"))


def _queued_ids() -> list[int]:
    job = the_job()
    return sorted(ast.literal_eval(job.params["kwargs"]["order_ids"])) if job else []


def _forget_jobs():
    db.session.rollback()
    db.session.query(Job).delete()
    db.session.commit()


@pytest.mark.browser
def test_email_me_the_file_in_the_browser(app, live_server, browser, staff, make_order,
                                          redis_conn):
    from conftest import browser_login
    from playwright.sync_api import expect

    app.config["ORDERS_PER_PAGE"] = 2
    ids = sorted(make_order(name=f"Customer {i}").id for i in range(3))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_login(page, live_server, staff.email)
    status = page.locator("#export-email-status")

    # one ticked order: that order, answered in place (htmx), no page load
    page.locator("input[name=ids]").first.check()
    ticked = int(page.locator("input[name=ids]").first.get_attribute("value"))
    page.click("#export-email")
    expect(status).to_contain_text("We'll email the file to staff@shop.test when it is ready.")
    assert page.url.endswith("/orders") and _queued_ids() == [ticked]
    _forget_jobs()

    # "Select all 3 matching": every matching order, not just this page's two
    page.check("#select-page")
    page.click("#select-matching")
    page.click("#export-email")
    expect(status).to_contain_text("We'll email the file to")
    page.wait_for_function("() => document.querySelector('#export-email-status .flash')")
    assert _queued_ids() == ids
    _forget_jobs()

    # nothing ticked: everything the list shows
    page.uncheck("#select-page")
    page.click("#export-email")
    page.wait_for_function("() => document.querySelector('#export-email-status .flash')")
    deadline = utcnow() + timedelta(seconds=5)
    while not _queued_ids() and utcnow() < deadline:
        page.wait_for_timeout(50)
    assert _queued_ids() == ids
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors


@pytest.mark.browser
@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_screenshots(app, live_server, browser, staff, make_order, redis_conn, locale, width,
                     height):
    """The export action with its answer, and both export emails, saved to look at."""
    from conftest import browser_login

    user = db.session.get(User, staff.id)
    user.locale = locale
    db.session.commit()
    for name in ["陳大文", "Amy Wong", "李嘉欣"]:
        make_order(name=name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    tag = f"{'zh' if locale != 'en' else 'en'}-{width}"
    page = browser.new_page(viewport={"width": width, "height": height})
    browser_login(page, live_server, staff.email)
    page.locator("input[name=ids]").first.check()
    page.click("#export-email")
    page.wait_for_function("() => document.querySelector('#export-email-status .flash')")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the orders list scrolls sideways by {overflow}px at {width}px"
    page.locator("#results").screenshot(path=str(SHOTS / f"action-{tag}.png"))

    job, message = finished_export(user, [o.id for o in db.session.query(Order).all()], app=app)
    for case, limit in (("attached", None), ("link", 100)):
        app.config["EXPORT_MAIL_ATTACH_LIMIT"] = limit
        html_file = SHOTS / f"email-{case}-{tag}.html"
        html_file.write_text(render_export_email(fresh(OutboxMessage, message.id)).html)
        page.goto(html_file.as_uri())
        page.screenshot(path=str(SHOTS / f"email-{case}-{tag}.png"), full_page=True)
    db.session.get(Job, job.id).finished_at = utcnow() - DOWNLOAD_KEPT - timedelta(hours=1)
    db.session.commit()
    page.goto(f"{live_server}/jobs/{job.id}/download")
    page.screenshot(path=str(SHOTS / f"expired-{tag}.png"))


def test_from_the_button_to_the_inbox_through_the_real_worker(
        app, staff_client, make_order, redis_conn, run_worker, smtp_server):
    """The whole path: the view queues the export, the worker writes the file and the
    message, the commit queues its delivery, the same worker sends it over SMTP."""
    controller, inbox = smtp_server
    app.config.update(NOTIFY_DISPATCH=True, SMTP_HOST="127.0.0.1", SMTP_PORT=str(controller.port),
                      SMTP_SECURITY="none", MAIL_FROM="shop@example.hk")
    order = make_order(email="")  # no customer email: the export's is the only message
    number = order.number
    staff_client.post(URL, {"ids": [order.id]})
    assert run_worker()
    [envelope] = inbox.envelopes
    assert envelope.rcpt_tos == ["staff@shop.test"]
    parsed = message_from_bytes(envelope.original_content, policy=policy.default)
    [attachment] = attachments_of(parsed)
    assert numbers_in_workbook(attachment.get_content()) == [number]
    [message] = export_messages()
    assert message.status == "sent" and message.copy_path
