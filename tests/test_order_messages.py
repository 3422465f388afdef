"""The staff side of messages on the order page: the timeline of every message an
order caused, its rendered copy, Resend email (at most 5) and retry by hand.

Real messages with real copies: orders are placed through the domain and
delivered by domain.notify.delivery.deliver_due in copy-only mode (no SMTP),
which renders each email and stores it as instance/mail/<id>.eml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import select

from domain.db import db
from domain.models import DeskNotification, Order, OrderEvent, OutboxMessage
from domain.notify import alerts, outbox
from domain.notify.delivery import deliver_due
from domain.notify.transport import MailSettings, RenderedEmail, build_mime, store_copy

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")


def deliver(app) -> dict[str, int]:
    counts = deliver_due(MailSettings(), Path(app.config["MAIL_FOLDER"]))
    db.session.rollback()
    return counts


def messages_of(order_id: int) -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.order_id == order_id)
                                   .order_by(OutboxMessage.id)))


def reload(order_id: int) -> Order:
    db.session.expire_all()
    return db.session.get(Order, order_id)


def page(client, number: str, **kw) -> str:
    response = client.get(f"/orders/{number}", **kw)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def history(html: str) -> str:
    return html[html.index('id="history-h"'):html.index('<aside class="col-side">')]


def fail(message_id: int, outcome: str, error: str) -> str:
    """Run one real delivery outcome on the oldest due row: claimed, then recorded as
    failed (callers fail rows oldest first)."""
    ids, token = outbox.claim_due(limit=1)
    assert ids == [message_id]
    status = outbox.record_failure(message_id, token, error=error, outcome=outcome)
    db.session.rollback()
    return status


@pytest.fixture
def placed(app, make_order):
    """An order whose customer email was delivered (kept as a copy)."""
    order = make_order(name="陳大文", email="tai.man@example.hk")
    number, order_id = order.number, order.id
    assert deliver(app)["sent"] >= 1
    return number, order_id


# ------------------------------------------------------------------ the timeline


@pytest.mark.parametrize("htmx", [False, True])
def test_history_lists_each_message_under_its_event(owner_client, placed, htmx):
    number, order_id = placed
    (message,) = messages_of(order_id)
    assert message.status == "sent" and message.subject and message.copy_path
    html = page(owner_client, number, htmx=htmx)
    assert ("<html" in html) is not htmx
    item = re.search(r'<li class="ev ev-order_placed".*?</li>\s*</ul>', html, re.S).group(0)
    entry = item[item.index(f'id="message-{message.id}"'):]
    assert "Email" in entry and "tai.man@example.hk" in entry
    assert str(escape(message.subject)) in entry
    assert 'data-message-status="sent">Sent<' in entry
    assert f'href="/orders/{number}/messages/{message.id}"' in entry
    # copy-only mode says so where the messages are listed
    assert "SMTP is not set up: messages are kept as copies and not sent." in html


def test_queued_message_shows_its_kind_until_it_is_sent(owner_client, make_order):
    order = make_order()
    html = history(page(owner_client, order.number))
    (message,) = messages_of(order.id)
    entry = html[html.index(f'id="message-{message.id}"'):]
    assert "<strong style=\"overflow-wrap:anywhere\">Order received</strong>" in entry
    assert 'data-message-status="pending">Queued<' in entry
    assert f"/messages/{message.id}\"" not in entry.split("</li>")[0]  # no copy yet


def test_merchant_message_is_listed_too(owner_client, app, make_order):
    from domain.store import get_settings
    get_settings().notification_email = "orders@cookielab.hk"
    db.session.commit()
    order = make_order()
    number, order_id = order.number, order.id
    deliver(app)
    html = history(page(owner_client, number))
    audiences = {m.recipient for m in messages_of(order_id)}
    assert audiences == {"orders@cookielab.hk", "tai.man@example.hk"}
    assert "To orders@cookielab.hk" in html and "To tai.man@example.hk" in html


def test_failed_dead_and_unknown_read_in_words_with_their_error(owner_client, app, make_order):
    orders = [make_order(email=f"c{i}@example.hk") for i in range(3)]
    refs = [(o.number, o.id) for o in orders]
    ids = [messages_of(order_id)[0].id for _n, order_id in refs]
    assert fail(ids[0], "retry", "SMTP 421: try again later") == "failed"
    assert fail(ids[1], "permanent", "SMTP 550: no such user") == "dead"
    assert fail(ids[2], "unknown", outbox.STUCK_ERROR) == "unknown"
    expected = [("failed", "Failed, will retry", "SMTP 421: try again later", "Try again now"),
                ("dead", "Failed for good", "SMTP 550: no such user", "Send again"),
                ("unknown", "Outcome unknown", "The worker stopped while sending", "Send again…")]
    for (number, _id), message_id, (status, words, error, button) in zip(refs, ids, expected, strict=True):
        html = history(page(owner_client, number))
        entry = html[html.index(f'id="message-{message_id}"'):].split("</li>")[0]
        assert f'data-message-status="{status}">{words}<' in entry
        assert error in entry and button in entry
    failed_entry = history(page(owner_client, refs[0][0]))
    assert "Next try" in failed_entry


# ------------------------------------------------------------------ the rendered copy


def test_copy_shows_headers_text_and_a_framed_html_part(staff_client, placed):
    number, order_id = placed
    (message,) = messages_of(order_id)
    response = staff_client.get(f"/orders/{number}/messages/{message.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "tai.man@example.hk" in html and number in html
    for label in ("From", "To", "Date", "Plain-text part"):
        assert f">{label}<" in html
    frame = re.search(r'<iframe[^>]*>', html).group(0)
    assert f'src="/orders/{number}/messages/{message.id}/html"' in frame
    assert 'sandbox=""' in frame
    assert re.search(r'<pre class="mail-text[^>]*>\S', html), "the text part is shown"


def test_html_part_has_a_strict_policy_of_its_own(staff_client, placed):
    number, order_id = placed
    (message,) = messages_of(order_id)
    response = staff_client.get(f"/orders/{number}/messages/{message.id}/html")
    assert response.status_code == 200 and response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "frame-ancestors 'self'" in csp
    assert "script-src" not in csp
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Cache-Control"] == "no-store"
    assert number in response.get_data(as_text=True)
    # the desk's own pages keep theirs
    desk = staff_client.get(f"/orders/{number}/messages/{message.id}")
    assert "frame-ancestors 'none'" in desk.headers["Content-Security-Policy"]
    assert desk.headers["X-Frame-Options"] == "DENY"


def _copy_with_inline_image(app, message_id: int, html: str) -> None:
    """Deliver one row with content of the test's own (an inline cid: image)."""
    ids, token = outbox.claim_due()
    message = db.session.get(OutboxMessage, message_id)
    rendered = RenderedEmail(subject="SD 圖片", text="text part", html=html,
                             inline_images=[("logo@shopdesk.local", PNG, "png")])
    mime = build_mime(message, rendered, sender="shop@example.hk", sender_name="Cookie Lab")
    path = store_copy(Path(app.config["MAIL_FOLDER"]), message, mime)
    assert outbox.record_rendered(message_id, token, subject=rendered.subject, copy_path=str(path))
    assert outbox.record_sent(message_id, token)
    db.session.rollback()


def test_inline_images_are_rewritten_to_data_uris(app, staff_client, make_order):
    order = make_order()
    (message,) = messages_of(order.id)
    _copy_with_inline_image(app, message.id,
                            '<p><img alt="logo" src="cid:logo@shopdesk.local"> 你好</p>')
    body = staff_client.get(f"/orders/{order.number}/messages/{message.id}/html").get_data(as_text=True)
    assert "cid:" not in body
    assert 'src="data:image/png;base64,iVBORw0KGgo' in body and "你好" in body


def test_missing_or_unwritten_copy_shows_a_placeholder(app, staff_client, make_order, placed):
    number, order_id = placed
    (message,) = messages_of(order_id)
    Path(message.copy_path).unlink()
    html = staff_client.get(f"/orders/{number}/messages/{message.id}").get_data(as_text=True)
    assert "The copy of this message is no longer on the server" in html and "<iframe" not in html
    frame = staff_client.get(f"/orders/{number}/messages/{message.id}/html")
    assert frame.status_code == 200 and "no longer on the server" in frame.get_data(as_text=True)
    assert "sandbox" in frame.headers["Content-Security-Policy"]

    queued = make_order()
    (pending,) = messages_of(queued.id)
    html = staff_client.get(f"/orders/{queued.number}/messages/{pending.id}").get_data(as_text=True)
    assert "This message is queued and not written yet." in html


# ------------------------------------------------------------------ hostile ids


def test_another_orders_message_is_404(owner_client, app, make_order, placed):
    number, order_id = placed
    other = make_order(email="other@example.hk")
    (foreign,) = messages_of(other.id)
    for url in (f"/orders/{number}/messages/{foreign.id}",
                f"/orders/{number}/messages/{foreign.id}/html"):
        assert owner_client.get(url).status_code == 404
    response = owner_client.post(f"/orders/{number}/messages/retry", {"message_id": str(foreign.id)})
    assert response.status_code == 404


@pytest.mark.parametrize("bad", ["abc", "-1", "0", "1.5", "99999999999999999999999",
                                 "2147483648", "%C2%B2", "1%00"])
def test_bad_message_ids_are_404(owner_client, placed, bad):
    number, _order_id = placed
    assert owner_client.get(f"/orders/{number}/messages/{bad}").status_code == 404
    assert owner_client.get(f"/orders/{number}/messages/{bad}/html").status_code == 404


@pytest.mark.parametrize("bad", ["", "abc", "²", "٣", "-1", "0", "9" * 40, "1 ", "1e3"])
def test_crafted_retry_ids_are_404(owner_client, placed, bad):
    number, _order_id = placed
    response = owner_client.post(f"/orders/{number}/messages/retry", {"message_id": bad},
                                 htmx=True)
    assert response.status_code == 404


def test_messages_need_sign_in(client, placed):
    number, order_id = placed
    (message,) = messages_of(order_id)
    for url in (f"/orders/{number}/messages/{message.id}",
                f"/orders/{number}/messages/{message.id}/html"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


# ------------------------------------------------------------------ resend email


def test_resend_counts_down_to_the_limit(owner_client, placed):
    number, order_id = placed
    html = page(owner_client, number)
    assert "Resend email" in html and "(5 of 5 left)" in html
    for n in range(1, 6):
        response = owner_client.post(f"/orders/{number}/resend-email", htmx=True)
        body = response.get_data(as_text=True)
        assert response.status_code == 200, body
        assert f"Email resent to tai.man@example.hk ({n} of 5)." in body
        assert f"({5 - n} of 5 left)" in body
        assert f"Email resent ({n} of 5)" in history(body)
    button = re.search(r'<button[^>]*id="resend-email"[^>]*>', body).group(0)
    assert "disabled" in button
    assert "Resent 5 times, the limit for one order." in body

    # the 6th, crafted: refused with the domain's words, nothing written
    before = len(messages_of(order_id))
    response = owner_client.post(f"/orders/{number}/resend-email", htmx=True)
    assert response.status_code == 422
    assert ("has already been resent 5 times, the limit for one order, so it cannot be "
            "resent again.") in response.get_data(as_text=True)
    assert reload(order_id).email_resends == 5
    assert len(messages_of(order_id)) == before
    events = db.session.scalars(select(OrderEvent).where(OrderEvent.order_id == order_id,
                                                         OrderEvent.type == "email_resent")).all()
    assert [e.details["count"] for e in events] == [1, 2, 3, 4, 5]


def test_resend_without_htmx_redirects_with_the_message(owner_client, placed):
    number, order_id = placed
    response = owner_client.post(f"/orders/{number}/resend-email")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/orders/{number}")
    html = page(owner_client, number)
    assert "Email resent to tai.man@example.hk (1 of 5)." in html
    assert "(4 of 5 left)" in html
    # the resend is a message of its own, listed under its event, queued until delivered
    resent = messages_of(order_id)[-1]
    assert resent.status == "pending" and resent.kind == "payment_due"
    event = re.search(r'<li class="ev ev-email_resent".*?</li>\s*</ul>', html, re.S).group(0)
    assert f'id="message-{resent.id}"' in event and "“Awaiting payment” to tai.man@example.hk" in event


def test_no_customer_email_disables_resend_and_refuses_a_crafted_post(owner_client, make_order):
    order = make_order(email="")
    number, order_id = order.number, order.id
    html = page(owner_client, number)
    button = re.search(r'<button[^>]*id="resend-email"[^>]*>', html).group(0)
    assert "disabled" in button
    assert "No customer email on this order, so there is nothing to resend." in html
    response = owner_client.post(f"/orders/{number}/resend-email", htmx=True)
    assert response.status_code == 422
    assert f"Order {number} has no customer email to send to." in response.get_data(as_text=True)
    assert reload(order_id).email_resends == 0


def test_resend_and_retry_need_csrf(owner_client, placed):
    number, order_id = placed
    (message,) = messages_of(order_id)
    fail_id = message.id
    for htmx in (False, True):
        assert owner_client.post(f"/orders/{number}/resend-email", htmx=htmx,
                                 csrf=False).status_code == 400
        assert owner_client.post(f"/orders/{number}/messages/retry",
                                 {"message_id": str(fail_id)}, htmx=htmx,
                                 csrf=False).status_code == 400
    assert reload(order_id).email_resends == 0


# ------------------------------------------------------------------ retry by hand


@pytest.mark.parametrize("htmx", [False, True])
def test_retry_a_dead_message_by_hand(owner_client, owner, make_order, htmx):
    order = make_order()
    number, order_id = order.number, order.id
    (message,) = messages_of(order_id)
    fail(message.id, "permanent", "SMTP 550: mailbox unavailable")
    response = owner_client.post(f"/orders/{number}/messages/retry",
                                 {"message_id": str(message.id)}, htmx=htmx)
    if htmx:
        assert response.status_code == 200
        html = response.get_data(as_text=True)
    else:
        assert response.status_code == 302
        html = page(owner_client, number)
    assert "The message to tai.man@example.hk will be sent again." in html
    (again,) = messages_of(order_id)
    assert again.status == "pending" and again.attempts == 0
    event = re.search(r'<li class="ev ev-message_retried".*?</li>', html, re.S).group(0)
    assert "Message sent again by hand" in event and "Olivia Owner" in event
    assert "“Order received” to tai.man@example.hk" in event


def test_unknown_outcome_needs_the_staff_members_word(owner_client, make_order):
    order = make_order()
    number, order_id = order.number, order.id
    (message,) = messages_of(order_id)
    fail(message.id, "unknown", "The connection broke after the message was handed over")
    html = history(page(owner_client, number))
    entry = html[html.index(f'id="message-{message.id}"'):].split("</li>")[0]
    assert "may already have arrived" in entry and 'name="may_have_arrived"' in entry

    response = owner_client.post(f"/orders/{number}/messages/retry",
                                 {"message_id": str(message.id)}, htmx=True)
    assert response.status_code == 422
    assert "This message may already have arrived." in response.get_data(as_text=True)
    assert messages_of(order_id)[0].status == "unknown"

    response = owner_client.post(f"/orders/{number}/messages/retry",
                                 {"message_id": str(message.id), "may_have_arrived": "y"},
                                 htmx=True)
    assert response.status_code == 200
    assert messages_of(order_id)[0].status == "pending"


def test_a_sent_message_cannot_be_retried(owner_client, placed):
    number, order_id = placed
    (message,) = messages_of(order_id)
    response = owner_client.post(f"/orders/{number}/messages/retry",
                                 {"message_id": str(message.id)}, htmx=True)
    assert response.status_code == 422
    assert ("This message is sent: only a failed message or one whose outcome is unknown can "
            "be sent again.") in response.get_data(as_text=True)
    assert messages_of(order_id)[0].status == "sent"


# ------------------------------------------------------------------ hostile text


def test_html_in_subjects_and_recipients_is_escaped(owner_client, app, make_order):
    from domain.models import utcnow
    from domain.store import get_settings

    get_settings().name = "<script>alert('store')</script> Lab"
    db.session.commit()
    order = make_order(name="<img src=x onerror=alert(1)>")
    number, order_id = order.number, order.id
    from domain.db import write_transaction
    with write_transaction():
        outbox.write_messages([outbox.message_row(
            event_key="test:hostile", recipient='"<b onmouseover=alert(2)>"@example.hk',
            audience="customer", kind="<i>odd kind</i>", now=utcnow(), order_id=order_id)])
    deliver(app)
    html = page(owner_client, number)
    assert "<script>alert(" not in html and "<b onmouseover" not in html
    assert re.search(r'<li class="ev ev-message">\s*<ul class="ev-messages"', html)  # no event: alone
    assert "&lt;script&gt;alert(" in html
    assert "&lt;b onmouseover=alert(2)&gt;" in html and "&lt;i&gt;odd kind&lt;/i&gt;" in html
    hostile = messages_of(order_id)[-1]
    preview = owner_client.get(f"/orders/{number}/messages/{hostile.id}").get_data(as_text=True)
    assert "<script>alert(" not in preview and "<b onmouseover" not in preview


# ------------------------------------------------------------------ the bell


def test_opening_an_order_reads_its_notifications(staff_client, staff, owner, make_order):
    order = make_order()  # placed by a customer: every staff member's bell gets it
    other = make_order()
    assert alerts.unread_count(staff.id) == 2
    page(staff_client, order.number)
    db.session.expire_all()
    unread = db.session.scalars(select(DeskNotification.order_id).where(
        DeskNotification.user_id == staff.id, DeskNotification.read_at.is_(None))).all()
    assert unread == [other.id]
    assert alerts.unread_count(owner.id) == 2  # only the reader's own
