"""The Mail page (owner only): every message Shopdesk wrote, newest first, by status,
with the same rendered preview as the order page; says whether SMTP sends them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import select

from domain.db import db, write_transaction
from domain.models import OutboxMessage, utcnow
from domain.notify import outbox
from domain.notify.delivery import deliver_due
from domain.notify.transport import MailSettings


def deliver(app) -> dict[str, int]:
    counts = deliver_due(MailSettings(), Path(app.config["MAIL_FOLDER"]))
    db.session.rollback()
    return counts


def all_messages() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def staff_messages(count: int, user_id: int, *, recipient: str = "staff@shop.test") -> None:
    """Messages with no order (an export mailed to a staff member), written in bulk."""
    now = utcnow()
    with write_transaction():
        outbox.write_messages([outbox.message_row(
            event_key=f"export:test-{i}", recipient=recipient, audience="staff",
            kind="export_ready", now=now, user_id=user_id) for i in range(count)])


def rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="mail-item" id="mail-(\d+)"', html)]


# ------------------------------------------------------------------ access


def test_owner_only(client, staff_client, owner_client, make_order):
    order = make_order()
    (message,) = all_messages()
    urls = ["/settings/mail", f"/settings/mail/{message.id}", f"/settings/mail/{message.id}/html"]
    for url in urls:
        assert owner_client.get(url).status_code == 200, url
        assert staff_client.get(url).status_code == 403, url
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    # staff still read the order's own messages from the order page
    assert staff_client.get(f"/orders/{order.number}/messages/{message.id}").status_code == 200


def test_settings_navigation_links_the_mail_page(owner_client):
    html = owner_client.get("/settings/store").get_data(as_text=True)
    assert 'href="/settings/mail"' in html
    mail = owner_client.get("/settings/mail").get_data(as_text=True)
    assert re.search(r'<a href="/settings/mail" aria-current="page">Mail</a>', mail)


def test_with_and_without_htmx(owner_client, make_order):
    make_order()
    full = owner_client.get("/settings/mail").get_data(as_text=True)
    fragment = owner_client.get("/settings/mail", htmx=True).get_data(as_text=True)
    assert "<html" in full and "<html" not in fragment
    assert 'class="subnav"' in full and 'class="subnav"' not in fragment
    for html in (full, fragment):
        assert "tai.man@example.hk" in html and 'id="smtp-state"' in html


# ------------------------------------------------------------------ the list


def test_lists_every_message_newest_first_with_kind_status_and_order(owner_client, app,
                                                                     owner, make_order):
    from domain.store import get_settings
    get_settings().notification_email = "orders@cookielab.hk"
    db.session.commit()
    owner_id = owner.id
    first = make_order(email="first@example.hk")
    first_number = first.number
    deliver(app)  # (leaves the session empty)
    make_order(email="second@example.hk")
    staff_messages(1, owner_id)
    html = owner_client.get("/settings/mail").get_data(as_text=True)
    ids = [m.id for m in all_messages()]
    assert rows(html) == sorted(ids, reverse=True)
    table = html[html.index('<ul class="mail-list"'):]
    for text in ("first@example.hk", "second@example.hk", "orders@cookielab.hk",
                 "staff@shop.test", "Excel export", "Order received",
                 "New order (to the store)", f"Order {first_number}"):
        assert text in table, text
    assert '>Sent</span>' in table and '>Queued</span>' in table
    sent = next(m for m in all_messages() if m.recipient == "first@example.hk")
    assert sent.subject and str(escape(sent.subject)) in table


def test_filter_by_status_with_counts(owner_client, app, make_order):
    make_order(email="a@example.hk")
    deliver(app)
    make_order(email="b@example.hk")
    make_order(email="c@example.hk")
    html = owner_client.get("/settings/mail").get_data(as_text=True)
    assert re.search(r'data-status="" aria-current="page">All <span class="count">3<', html)
    assert re.search(r'data-status="sent" >Sent <span class="count">1<', html)
    assert re.search(r'data-status="pending" >Queued <span class="count">2<', html)
    sent = owner_client.get("/settings/mail?status=sent").get_data(as_text=True)
    assert "a@example.hk" in sent and "b@example.hk" not in sent
    queued = owner_client.get("/settings/mail?status=pending").get_data(as_text=True)
    assert "b@example.hk" in queued and "c@example.hk" in queued and "a@example.hk" not in queued
    dead = owner_client.get("/settings/mail?status=dead").get_data(as_text=True)
    assert "No message in “Failed for good”." in dead
    # an unknown filter shows everything
    odd = owner_client.get("/settings/mail?status=<script>").get_data(as_text=True)
    assert len(rows(odd)) == 3 and "<script>" not in odd


@pytest.mark.parametrize("page, expected", [("1", 1), ("2", 2), ("3", 3), ("0", 1),
                                            ("999999", 3), ("abc", 1), ("²", 1), ("-2", 1),
                                            ("9" * 50, 1)])
def test_pages(owner_client, owner, page, expected):
    staff_messages(120, owner.id)  # 50 + 50 + 20
    html = owner_client.get(f"/settings/mail?page={page}").get_data(as_text=True)
    assert f"Page {expected} of 3" in html
    shown = rows(html)
    assert len(shown) == (20 if expected == 3 else 50)
    newest = max(m.id for m in all_messages())
    assert shown[0] == newest - 50 * (expected - 1)


def test_pager_keeps_the_status_filter(owner_client, owner):
    staff_messages(60, owner.id)
    html = owner_client.get("/settings/mail?status=pending").get_data(as_text=True)
    assert 'href="/settings/mail?status=pending&amp;page=2"' in html


def test_empty(owner_client):
    html = owner_client.get("/settings/mail").get_data(as_text=True)
    assert "Shopdesk has not written any message yet." in html


# ------------------------------------------------------------------ SMTP or not


def test_without_smtp_the_page_says_messages_are_kept(owner_client, app):
    app.config["SMTP_HOST"] = ""
    html = owner_client.get("/settings/mail").get_data(as_text=True)
    assert "Messages are kept here and not sent." in html
    assert "Set SMTP_HOST" in html and app.config["MAIL_FOLDER"] in html


def test_with_smtp_the_page_names_the_server(owner_client, app):
    app.config.update(SMTP_HOST="smtp.example.hk", SMTP_PORT=587)
    html = owner_client.get("/settings/mail").get_data(as_text=True)
    assert "Messages are sent through smtp.example.hk:587." in html
    assert "kept here and not sent" not in html


# ------------------------------------------------------------------ the preview


def test_preview_of_an_order_message(owner_client, app, make_order):
    order = make_order()
    number = order.number
    deliver(app)
    (message,) = all_messages()
    html = owner_client.get(f"/settings/mail/{message.id}").get_data(as_text=True)
    assert 'href="/settings/mail">← Mail</a>' in html
    assert f'href="/orders/{number}">Order {number}</a>' in html
    assert f'src="/settings/mail/{message.id}/html"' in html
    frame = owner_client.get(f"/settings/mail/{message.id}/html")
    assert "sandbox" in frame.headers["Content-Security-Policy"]
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert number in frame.get_data(as_text=True)


def test_preview_of_a_message_without_an_order(owner_client, owner):
    staff_messages(1, owner.id)
    (message,) = all_messages()
    response = owner_client.get(f"/settings/mail/{message.id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Excel export" in html and "This message is queued and not written yet." in html


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "99999999999999999999", "2147483648", "404"])
def test_bad_ids_are_404(owner_client, bad):
    assert owner_client.get(f"/settings/mail/{bad}").status_code == 404
    assert owner_client.get(f"/settings/mail/{bad}/html").status_code == 404


def test_html_in_recipients_and_subjects_is_escaped(owner_client, app, owner):
    from domain.store import get_settings
    get_settings().name = "<script>alert('x')</script>"
    db.session.commit()
    staff_messages(1, owner.id, recipient='"<img src=x onerror=alert(1)>"@example.hk')
    html = owner_client.get("/settings/mail").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>alert(" not in html
