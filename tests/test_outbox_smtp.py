"""The SMTP transport against a real aiosmtpd server on loopback: messages
arrive whole (subject, both parts, link, Chinese text), failures are
classified by what they say about delivery (421 and timeouts retried, 550
dead, a lost final reply "unknown" and never resent), and across all of it
no message reaches the server twice."""

from __future__ import annotations

import smtplib
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from domain.db import db
from domain.models import Order, OutboxMessage, utcnow
from domain.notify import outbox
from domain.notify.delivery import deliver_due
from domain.notify.transport import (
    DeliveryFailed,
    MailSettings,
    RenderedEmail,
    SMTPConnection,
    _describe,
    build_mime,
)
from domain.store import get_settings

pytest_plugins = ["smtp_fixtures"]

SHOP = "orders@cookielab.hk"
CUSTOMER = "tai.man@example.hk"
STORE = "曲奇實驗室"


@pytest.fixture
def shop(app):
    settings = get_settings()
    settings.name = STORE
    settings.notification_email = SHOP
    db.session.commit()
    return settings


@pytest.fixture
def folder(app) -> Path:
    return Path(app.config["MAIL_FOLDER"])


def rows():
    db.session.rollback()
    db.session.expire_all()
    return {m.recipient: m for m in db.session.scalars(select(OutboxMessage))}


def row(message_id):
    db.session.rollback()
    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


def part(mime, subtype: str) -> str:
    """A text part as a mail client shows it (the wire's CRLF read as newlines)."""
    return mime.get_body((subtype,)).get_content().replace("\r\n", "\n")


def assert_never_twice(server):
    counts = Counter(r.message_id for r in server.handler.delivered)
    assert all(n == 1 for n in counts.values()), counts


# ------------------------------------------------------------------ delivered whole


def test_deliver_due_sends_the_order_emails_whole(app, shop, make_order, smtp_server, folder):
    server = smtp_server()
    order = make_order(email=CUSTOMER, name="陳大文")
    counts = deliver_due(server.settings(), folder)
    assert counts["sent"] == 2 and counts["failed"] == counts["dead"] == 0
    by_rcpt = {r.rcpt_tos[0]: r for r in server.handler.delivered}
    assert set(by_rcpt) == {CUSTOMER, SHOP}
    order = db.session.get(Order, order.id)
    messages = rows()
    for recipient, received in by_rcpt.items():
        mime = received.message
        message = messages[recipient]
        assert (message.status, message.attempts, message.last_error) == ("sent", 1, "")
        assert message.sent_at is not None
        assert mime["Subject"] == message.subject
        assert order.number in mime["Subject"] and STORE in mime["Subject"]
        assert mime["To"] == recipient
        assert mime["Message-ID"].startswith(f"<outbox-{message.id}.")
        assert received.mail_from == "orders@cookielab.hk"
        text, html = part(mime, "plain"), part(mime, "html")
        assert STORE in text and STORE in html
        assert order.number in text and order.number in html
        # The stored copy is the message that was sent.
        copy = Path(message.copy_path)
        assert copy == folder / f"{message.id}.eml"
        from email import message_from_bytes, policy
        stored = message_from_bytes(copy.read_bytes(), policy=policy.default)
        assert stored["Message-ID"] == mime["Message-ID"]
        assert part(stored, "plain") == text
    customer = by_rcpt[CUSTOMER].message
    text, html = part(customer, "plain"), part(customer, "html")
    base = app.config["PUBLIC_URL"].rstrip("/")
    for body in (text, html):
        assert f"{base}/" in body and order.public_token in body  # the secret order page
        assert "曲奇禮盒" in body  # the item, in Chinese
    merchant = by_rcpt[SHOP].message
    for body in (part(merchant, "plain"), part(merchant, "html")):
        assert f"{base}/orders/{order.number}" in body  # the order in the desk
    # Nothing is left to send, and a second run sends nothing.
    assert deliver_due(server.settings(), folder)["sent"] == 0
    assert len(server.handler.received) == 2


RENDERED = RenderedEmail(
    subject="SD12001 已確認付款 — 曲奇實驗室 Cookie Lab",
    text="陳大文你好，\n你的訂單 SD12001 已確認付款。\n.\n..a line starting with dots\n"
         "查看訂單：https://shop.example.hk/o/abc123\n",
    html='<p>陳大文你好，</p><p>你的訂單 <b>SD12001</b> 已確認付款。</p>'
         '<p><img src="cid:logo@shopdesk.local" alt="曲奇實驗室"></p>'
         '<a href="https://shop.example.hk/o/abc123">查看訂單</a>',
    inline_images=[("logo@shopdesk.local", b"\x89PNG\r\n\x1a\n fake png", "png")],
    attachments=[("訂單 2024.xlsx", b"PK\x03\x04 fake xlsx", "application",
                  "vnd.openxmlformats-officedocument.spreadsheetml.sheet")])


def _stub_message(message_id=7, recipient=CUSTOMER):
    return OutboxMessage(id=message_id, event_key=f"event:{message_id}", recipient=recipient,
                         created_at=utcnow())


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_the_transport_carries_every_part(app, smtp_server, security):
    server = smtp_server(tls=None if security == "none" else security)
    mime = build_mime(_stub_message(), RENDERED, sender="orders@cookielab.hk",
                      sender_name="曲奇實驗室", reply_to="hello@cookielab.hk")
    # No raw 8-bit content: smtplib does not announce 8BITMIME.
    assert max(mime.as_bytes()) < 128
    connection = SMTPConnection(server.settings())
    connection.send(mime)
    connection.send(build_mime(_stub_message(8, "b@example.hk"), RENDERED,
                               sender="orders@cookielab.hk"))  # the same session, reused
    connection.close()
    assert [r.rcpt_tos for r in server.handler.delivered] == [[CUSTOMER], ["b@example.hk"]]
    got = server.handler.delivered[0].message
    assert got["Subject"] == RENDERED.subject
    (sender,) = got["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("曲奇實驗室", "orders@cookielab.hk")
    assert got["Reply-To"] == "hello@cookielab.hk"
    assert got["Auto-Submitted"] == "auto-generated"
    assert part(got, "plain") == RENDERED.text  # dots unstuffed
    assert part(got, "html").strip() == RENDERED.html
    related = [p for p in got.walk() if p.get_content_type() == "image/png"]
    assert related[0]["Content-ID"] == "<logo@shopdesk.local>"
    assert related[0].get_content() == RENDERED.inline_images[0][1]
    (attachment,) = got.iter_attachments()
    assert attachment.get_filename() == "訂單 2024.xlsx"
    assert attachment.get_content() == RENDERED.attachments[0][1]


def test_without_smtp_the_copy_is_the_delivery(app, shop, make_order, folder):
    make_order(email=CUSTOMER)
    counts = deliver_due(MailSettings(), folder)
    assert counts["sent"] == 2
    for message in rows().values():
        assert message.status == "sent" and Path(message.copy_path).is_file()


# ------------------------------------------------------------------ failures


def test_a_421_is_retried_later_and_then_delivered_once(app, make_order, smtp_server, folder):
    server = smtp_server()
    server.rule(CUSTOMER, stage="RCPT", reply="421 4.7.0 Try again later")
    make_order(email=CUSTOMER)
    t0 = utcnow()
    counts = deliver_due(server.settings(), folder, now=lambda: t0)
    assert counts["failed"] == 1
    message = rows()[CUSTOMER]
    assert message.status == "failed" and message.attempts == 1
    assert message.last_error == "tai.man@example.hk refused: SMTP 421: 4.7.0 Try again later"
    assert message.next_attempt_at == t0 + timedelta(seconds=outbox.RETRY_BASE_SECONDS)
    # Not due yet: nothing is tried, even though the server would take it now.
    server.heal()
    assert deliver_due(server.settings(), folder, now=lambda: t0 + timedelta(seconds=10)) == \
        {"sent": 0, "failed": 0, "dead": 0, "unknown": 0, "skipped": 0}
    assert server.handler.received == []
    later = t0 + timedelta(seconds=31)
    assert deliver_due(server.settings(), folder, now=lambda: later)["sent"] == 1
    message = rows()[CUSTOMER]
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, "")
    assert len(server.handler.delivered) == 1


def test_a_421_after_the_data_is_retried_and_delivered_once(app, make_order, smtp_server,
                                                            folder):
    server = smtp_server()
    server.rule(CUSTOMER, stage="DATA", reply="421 4.3.2 System not accepting messages")
    make_order(email=CUSTOMER)
    t0 = utcnow()
    assert deliver_due(server.settings(), folder, now=lambda: t0)["failed"] == 1
    assert rows()[CUSTOMER].last_error == "SMTP 421: 4.3.2 System not accepting messages"
    server.heal()
    assert deliver_due(server.settings(), folder, now=lambda: t0 + timedelta(minutes=1))[
        "sent"] == 1
    assert len(server.handler.received) == 2 and len(server.handler.delivered) == 1


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_a_550_is_dead_at_once_with_the_error(app, make_order, smtp_server, folder, stage):
    server = smtp_server()
    server.rule(CUSTOMER, stage=stage, reply="550 5.1.1 <tai.man@example.hk>: No such user")
    make_order(email=CUSTOMER)
    t0 = utcnow()
    assert deliver_due(server.settings(), folder, now=lambda: t0)["dead"] == 1
    message = rows()[CUSTOMER]
    assert (message.status, message.attempts) == ("dead", 1)
    if stage == "RCPT":
        assert message.last_error == \
            "tai.man@example.hk refused: SMTP 550: 5.1.1 <tai.man@example.hk>: No such user"
    else:
        assert message.last_error == "SMTP 550: 5.1.1 <tai.man@example.hk>: No such user"
    server.heal()
    assert deliver_due(server.settings(), folder, now=lambda: t0 + timedelta(days=1))[
        "sent"] == 0
    assert server.handler.delivered == []


def test_a_server_too_slow_before_the_data_is_retried(app, make_order, smtp_server, folder):
    server = smtp_server()
    server.rule(CUSTOMER, stage="RCPT", delay=3.0)
    make_order(email=CUSTOMER)
    t0 = utcnow()
    counts = deliver_due(server.settings(timeout=0.5), folder, now=lambda: t0)
    assert counts["failed"] == 1
    message = rows()[CUSTOMER]
    assert message.status == "failed"
    assert message.last_error == "No answer from the mail server in time (timed out)"
    assert server.handler.received == []
    server.heal()
    assert deliver_due(server.settings(timeout=0.5), folder,
                       now=lambda: t0 + timedelta(minutes=1))["sent"] == 1
    assert len(server.handler.delivered) == 1


@pytest.mark.parametrize("tls", [None, "ssl"])
def test_no_final_reply_after_the_data_is_unknown_and_never_resent(app, make_order, smtp_server,
                                                                   folder, tls):
    server = smtp_server(tls=tls)
    server.rule(CUSTOMER, hang=True)
    order = make_order(email=CUSTOMER)
    t0 = utcnow()
    counts = deliver_due(server.settings(timeout=0.5), folder, now=lambda: t0)
    assert counts["unknown"] == 1
    message = rows()[CUSTOMER]
    assert message.status == "unknown"
    assert message.last_error.startswith("The connection broke after the message was handed "
                                         "over, before the server confirmed it")
    assert "timed out" in message.last_error
    server.heal()
    for hours in (1, 24, 24 * 30):
        assert deliver_due(server.settings(), folder,
                           now=lambda h=hours: t0 + timedelta(hours=h))["sent"] == 0
    assert outbox.give_up_stuck(now=t0 + timedelta(days=31)) == 0
    assert rows()[CUSTOMER].status == "unknown"
    assert [r.rcpt_tos for r in server.handler.received] == [[CUSTOMER]]
    assert outbox.order_messages(order.id)[0].status == "unknown"


def test_connection_refused_is_retried(app, make_order, smtp_server, folder):
    from smtp_fixtures import free_port

    port = free_port()  # nothing listens here yet
    make_order(email=CUSTOMER)
    t0 = utcnow()
    settings = MailSettings(host="127.0.0.1", port=port, security="none",
                            sender="orders@cookielab.hk", timeout=2)
    assert deliver_due(settings, folder, now=lambda: t0)["failed"] == 1
    message = rows()[CUSTOMER]
    assert message.status == "failed"
    assert message.last_error == (f"Could not connect to 127.0.0.1:{port}: Connection refused "
                                  "(is the mail server running?)")
    server = smtp_server(port=port)
    assert deliver_due(settings, folder, now=lambda: t0 + timedelta(minutes=1))["sent"] == 1
    assert len(server.handler.delivered) == 1


def test_a_sender_refusal_or_missing_starttls_is_retried_not_dead(app, make_order,
                                                                  smtp_server, folder):
    # The server requires STARTTLS; settings that skip it are a mistake to fix,
    # not a reason to give up on the customer's email at once.
    server = smtp_server(tls="starttls")
    make_order(email=CUSTOMER)
    t0 = utcnow()
    assert deliver_due(server.settings(security="none"), folder, now=lambda: t0)[
        "failed"] == 1
    message = rows()[CUSTOMER]
    assert message.status == "failed"
    assert message.last_error.startswith("The server refused the sender orders@cookielab.hk: "
                                         "SMTP 530")
    assert deliver_due(server.settings(), folder, now=lambda: t0 + timedelta(minutes=1))[
        "sent"] == 1


def test_a_session_dropped_by_the_server_is_reopened_once(app, make_order, smtp_server, folder):
    server = smtp_server()
    first = "first@example.hk"
    server.rule(first, close_after=True)  # accepts, then hangs up (like an idle timeout)
    make_order(email=first)
    make_order(email=CUSTOMER)
    counts = deliver_due(server.settings(), folder)
    assert counts == {"sent": 2, "failed": 0, "dead": 0, "unknown": 0, "skipped": 0}
    got = server.handler.delivered
    assert [r.rcpt_tos[0] for r in got] == [first, CUSTOMER]
    assert got[0].session != got[1].session  # the second went on a fresh connection
    assert {m.attempts for m in rows().values()} == {1}  # the dropped session cost no attempt


def test_a_mixed_batch_never_reaches_the_server_twice(app, shop, make_order, smtp_server,
                                                      folder):
    server = smtp_server()
    behaviour = {
        "ok1@example.hk": {},
        "busy@example.hk": dict(stage="RCPT", reply="421 4.7.0 Busy"),
        "gone@example.hk": dict(stage="RCPT", reply="550 5.1.1 No such user"),
        "slow@example.hk": dict(stage="RCPT", delay=2.0),
        "hang@example.hk": dict(hang=True),
        "late421@example.hk": dict(stage="DATA", reply="421 4.3.2 Closing"),
        "ok2@example.hk": {},
    }
    for recipient, rule in behaviour.items():
        if rule:
            server.rule(recipient, **rule)
        make_order(email=recipient)
    settings = server.settings(timeout=0.5)
    t0 = utcnow()
    first = deliver_due(settings, folder, now=lambda: t0)
    # Sent: the 7 new-order emails to the shop, and ok1 and ok2.
    assert first == {"sent": 9, "failed": 3, "dead": 1, "unknown": 1, "skipped": 0}
    status = {r: m.status for r, m in rows().items()}
    assert status == {"ok1@example.hk": "sent", "ok2@example.hk": "sent",
                      "busy@example.hk": "failed", "gone@example.hk": "dead",
                      "slow@example.hk": "failed", "hang@example.hk": "unknown",
                      "late421@example.hk": "failed", SHOP: "sent"}
    server.heal()
    now = t0
    for minutes in (1, 5, 30, 120):  # the retries come due, the sweep runs between
        now = t0 + timedelta(minutes=minutes)
        outbox.give_up_stuck(now=now)
        deliver_due(settings, folder, now=lambda n=now: n)
    status = {r: m.status for r, m in rows().items()}
    assert status == {"ok1@example.hk": "sent", "ok2@example.hk": "sent",
                      "busy@example.hk": "sent", "gone@example.hk": "dead",
                      "slow@example.hk": "sent", "hang@example.hk": "unknown",
                      "late421@example.hk": "sent", SHOP: "sent"}
    assert_never_twice(server)
    delivered = Counter(r.rcpt_tos[0] for r in server.handler.delivered)
    assert delivered == Counter({SHOP: 7, "ok1@example.hk": 1, "ok2@example.hk": 1,
                                 "busy@example.hk": 1, "slow@example.hk": 1,
                                 "hang@example.hk": 1, "late421@example.hk": 1})


def test_describe_reads_plainly():
    assert _describe(smtplib.SMTPResponseException(421, b"4.7.0 Try later")) == \
        "SMTP 421: 4.7.0 Try later"
    assert _describe(smtplib.SMTPRecipientsRefused(
        {"a@b.hk": (550, b"5.1.1 No such user")})) == "a@b.hk refused: SMTP 550: 5.1.1 No such user"
    assert _describe(TimeoutError("timed out")) == \
        "No answer from the mail server in time (timed out)"
    assert _describe(ConnectionRefusedError(111, "Connection refused")) == \
        "Connection refused (is the mail server running?)"
    assert _describe(smtplib.SMTPServerDisconnected("Connection unexpectedly closed")) == \
        "The mail server closed the connection (Connection unexpectedly closed)"
    assert _describe(ValueError("odd")) == "ValueError: odd"
    assert DeliveryFailed("retry", "x").outcome == "retry"


def _read_back(mime) -> dict:
    from email import message_from_bytes, policy

    got = message_from_bytes(mime.as_bytes(), policy=policy.default)
    return {
        "subject": got["Subject"], "from": [(a.display_name, a.addr_spec) for a in got["From"].addresses],
        "to": got["To"], "reply_to": got["Reply-To"], "message_id": got["Message-ID"],
        "auto": got["Auto-Submitted"],
        "structure": [p.get_content_type() for p in got.walk()],
        "plain": part(got, "plain"), "html": part(got, "html").strip(),
        "images": [(p["Content-ID"], p.get_content()) for p in got.walk()
                   if p.get_content_maintype() == "image"],
        "attachments": [(a.get_filename(), a.get_content()) for a in got.iter_attachments()],
    }


def test_both_builders_give_a_mail_client_the_same_message(app):
    """ASCII addresses take the fast classic email.mime builder; a non-ASCII
    address the modern API (SMTPUTF8). Read back, the two are the same message."""
    from domain.notify.transport import _build_modern

    message = _stub_message()
    fast = build_mime(message, RENDERED, sender="orders@cookielab.hk", sender_name="曲奇實驗室",
                      reply_to="hello@cookielab.hk")
    modern = _build_modern(message, RENDERED, sender="orders@cookielab.hk",
                           sender_name="曲奇實驗室", reply_to="hello@cookielab.hk")
    assert type(fast) is not type(modern)
    assert max(fast.as_bytes()) < 128  # 7-bit on the wire
    assert _read_back(fast) == _read_back(modern)
    assert _read_back(fast)["structure"] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
        "text/html", "image/png",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"]


def test_a_non_ascii_address_is_built_for_smtputf8(app):
    from email.message import EmailMessage

    mime = build_mime(_stub_message(recipient="陳大文@例子.香港"), RENDERED,
                      sender="orders@cookielab.hk")
    assert isinstance(mime, EmailMessage)
    assert _read_back(mime)["to"] == "陳大文@例子.香港"
