"""Views through the test client: with and without HX-Request, CSRF, roles, login."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from domain.db import db
from domain.models import Order, OrderEvent, Variant

BACK_OFFICE_PAGES = ["/orders", "/orders?list=unpaid", "/orders?status=processing",
                     "/settings/store", "/settings/payments", "/settings/shipping",
                     "/settings/staff"]


def order_page(order):
    return f"/orders/{order.number}"


def reload(order):
    db.session.expire_all()
    return db.session.get(Order, order.id)


# ------------------------------------------------------------------ access


@pytest.mark.parametrize("url", BACK_OFFICE_PAGES + ["/orders/SD10001"])
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("url", [u for u in BACK_OFFICE_PAGES if u.startswith("/settings")])
def test_staff_cannot_open_settings(staff_client, url):
    assert staff_client.get(url).status_code == 403


def test_staff_cannot_post_settings(staff_client):
    response = staff_client.post("/settings/store", {"name": "Hijacked", "currency": "HKD",
                                                      "timezone": "UTC", "plan": "advanced"})
    assert response.status_code == 403
    from domain.store import get_settings
    assert get_settings().name != "Hijacked"


@pytest.mark.parametrize("url", BACK_OFFICE_PAGES)
def test_pages_with_and_without_htmx(owner_client, make_order, url):
    make_order(name="陳大文")
    full = owner_client.get(url)
    fragment = owner_client.get(url, htmx=True)
    assert full.status_code == 200 and fragment.status_code == 200
    assert "<html" in full.get_data(as_text=True)
    assert "<html" not in fragment.get_data(as_text=True)
    assert len(fragment.data) < len(full.data)


def test_order_page_with_and_without_htmx(owner_client, make_order):
    order = make_order(name="陳大文")
    full = owner_client.get(order_page(order)).get_data(as_text=True)
    fragment = owner_client.get(order_page(order), htmx=True).get_data(as_text=True)
    assert "<html" in full and "<html" not in fragment
    for html in (full, fragment):
        assert order.number in html and "陳大文" in html and 'id="order-body"' in html


def test_unknown_order_is_404(owner_client):
    assert owner_client.get("/orders/NOPE").status_code == 404
    assert owner_client.get("/orders/" + "9" * 300).status_code == 404


def test_list_htmx_fragment_carries_tab_counts_out_of_band(owner_client, make_order):
    make_order()
    make_order(payment="credit_card")
    html = owner_client.get("/orders?status=processing", htmx=True).get_data(as_text=True)
    assert 'id="status-tabs"' in html and 'hx-swap-oob="true"' in html
    assert re.search(r'data-status="processing"[^>]*aria-current="page">Processing <span class="count">1<', html)
    assert 'id="results"' in html


def test_list_shows_rows_and_status_badges(owner_client, make_order):
    a = make_order(name="陳大文")
    b = make_order(name="Amy Wong", payment="credit_card")
    html = owner_client.get("/orders").get_data(as_text=True)
    assert a.number in html and b.number in html
    assert 'badge badge-red' in html
    only_processing = owner_client.get("/orders?status=processing").get_data(as_text=True)
    assert b.number in only_processing and a.number not in only_processing


def test_list_refuses_bad_parameters_clearly(owner_client, make_order):
    make_order()
    html = owner_client.get("/orders?status=bogus&page=-5&from=yesterday&payment=abc").get_data(as_text=True)
    assert "Unknown status tab" in html
    assert "From date must be a date" in html
    assert "Unknown payment method" in html


def test_pagination(owner_client, make_variant, make_order, app):
    app.config["ORDERS_PER_PAGE"] = 50
    v = make_variant(stock=None)
    numbers = [make_order(items=[(v.id, 1)]).number for _ in range(53)]
    page1 = owner_client.get("/orders").get_data(as_text=True)
    page2 = owner_client.get("/orders?page=2").get_data(as_text=True)
    assert "page 1 of 2" in page1 and "page 2 of 2" in page2
    assert numbers[-1] in page1 and numbers[0] in page2 and numbers[0] not in page1


# ------------------------------------------------------------------ CSRF

MUTATING = ["confirm-payment", "decline-proof", "ship", "ready-for-pickup", "complete-pickup",
            "reject", "notes", "refund-notes", "tracking"]


@pytest.mark.parametrize("action", MUTATING)
@pytest.mark.parametrize("htmx", [False, True])
def test_mutations_without_csrf_are_refused(owner_client, make_order, action, htmx):
    order = make_order(payment="credit_card")
    response = owner_client.post(f"/orders/{order.number}/{action}",
                                 {"reason": "x", "text": "x", "tracking_code": "SF1",
                                  "amount": "1", "method": "FPS"}, htmx=htmx, csrf=False)
    assert response.status_code == 400
    after = reload(order)
    assert after.status == "processing" and after.tracking_code == ""
    assert db.session.scalars(select(OrderEvent.type).where(OrderEvent.order_id == order.id)).all() == ["order_placed"]


@pytest.mark.parametrize("url", ["/settings/store", "/settings/payments", "/settings/shipping",
                                 "/settings/staff", "/settings/payments/1/toggle", "/logout"])
def test_settings_and_logout_need_csrf(owner_client, url):
    assert owner_client.post(url, {"name": "x"}, csrf=False).status_code == 400


def test_login_needs_csrf(client, owner):
    response = client.http.post("/login", data={"email": owner.email, "password": "correct horse battery"})
    assert response.status_code == 400


# ------------------------------------------------------------------ actions


def test_confirm_payment_without_htmx_redirects(owner_client, make_order):
    order = make_order()
    response = owner_client.post(f"/orders/{order.number}/confirm-payment")
    assert response.status_code == 302
    assert reload(order).status == "processing"
    page = owner_client.get(order_page(order)).get_data(as_text=True)
    assert "Payment confirmed for" in page


def test_confirm_payment_with_htmx_returns_order_body(owner_client, make_order):
    order = make_order()
    response = owner_client.post(f"/orders/{order.number}/confirm-payment", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="order-body"')
    assert "Payment confirmed for" in html and "Confirm shipment" in html


def test_refused_action_explains_and_changes_nothing(owner_client, make_order):
    order = make_order()  # pending payment: cannot ship
    response = owner_client.post(f"/orders/{order.number}/ship", htmx=True)
    assert response.status_code == 422
    assert "cannot be shipped" in response.get_data(as_text=True)
    assert reload(order).status == "pending_payment"


def test_reject_needs_a_reason_and_restocks(owner_client, make_variant, make_order):
    v = make_variant(stock=5)
    order = make_order(items=[(v.id, 2)])
    refused = owner_client.post(f"/orders/{order.number}/reject", {"reason": "  "}, htmx=True)
    assert refused.status_code == 422 and "reason" in refused.get_data(as_text=True).lower()
    assert reload(order).status == "pending_payment"
    ok = owner_client.post(f"/orders/{order.number}/reject", {"reason": "缺貨 out of stock"})
    assert ok.status_code == 302
    assert reload(order).status == "canceled"
    assert db.session.get(Variant, v.id).stock == 5
    page = owner_client.get(order_page(order)).get_data(as_text=True)
    assert "缺貨 out of stock" in page and "badge-grey" in page
    assert "Reject order…" not in page  # no actions for a canceled order


def test_order_page_offers_only_allowed_actions(owner_client, make_order):
    pending = owner_client.get(order_page(make_order())).get_data(as_text=True)
    assert "Confirm payment" in pending and "Reject order…" in pending
    assert "Confirm shipment" not in pending and "Decline proof" not in pending
    pickup = owner_client.get(order_page(make_order(payment="credit_card", shipping="pickup",
                                                    address=""))).get_data(as_text=True)
    assert "Ready for pickup" in pickup and "Confirm shipment" not in pickup
    assert "No refund is made by Shopdesk" in pickup


def test_ship_with_tracking_code(owner_client, make_order):
    order = make_order(payment="credit_card")
    owner_client.post(f"/orders/{order.number}/ship", {"tracking_code": "SF1234567"})
    after = reload(order)
    assert (after.status, after.delivery_status, after.tracking_code) == ("completed", "shipped", "SF1234567")


def test_pickup_views(owner_client, make_order):
    order = make_order(payment="credit_card", shipping="pickup", address="")
    owner_client.post(f"/orders/{order.number}/ready-for-pickup")
    assert reload(order).delivery_status == "ready_for_pickup"
    owner_client.post(f"/orders/{order.number}/complete-pickup", htmx=True)
    assert reload(order).status == "completed"


def test_decline_proof_view(owner_client, make_order):
    from domain.orders import upload_proof

    order = make_order()
    upload_proof(order.id, path="x.png", sha256="a" * 64)
    owner_client.post(f"/orders/{order.number}/decline-proof", {"reason": "Amount is wrong"})
    assert reload(order).status == "pending_payment"


def test_notes_and_refund_note_views(owner_client, make_order):
    order = make_order(payment="credit_card")
    owner_client.post(f"/orders/{order.number}/notes", {"text": "<b>gift</b> wrap"})
    bad = owner_client.post(f"/orders/{order.number}/refund-notes",
                            {"amount": "abc", "method": "FPS"}, htmx=True)
    assert bad.status_code == 422 and "positive amount" in bad.get_data(as_text=True)
    owner_client.post(f"/orders/{order.number}/refund-notes",
                      {"amount": "10.50", "method": "FPS", "reference": "R-1"})
    page = owner_client.get(order_page(order)).get_data(as_text=True)
    assert "&lt;b&gt;gift&lt;/b&gt; wrap" in page and "<b>gift</b>" not in page
    assert "HK$10.50 by FPS" in page


# ------------------------------------------------------------------ tracking inline


def test_tracking_inline_edit_cycle(owner_client, make_order):
    order = make_order(payment="credit_card")
    url = f"/orders/{order.number}/tracking"
    editor = owner_client.get(url + "/edit?context=list", htmx=True).get_data(as_text=True)
    assert 'name="tracking_code"' in editor and f'id="tracking-list-{order.number}"' in editor
    saved = owner_client.post(url + "?context=list", {"tracking_code": "SF998877"}, htmx=True)
    assert saved.status_code == 200
    html = saved.get_data(as_text=True)
    assert "SF998877" in html and "<form" not in html
    assert reload(order).tracking_code == "SF998877"
    cancel = owner_client.get(url + "?context=list", htmx=True).get_data(as_text=True)
    assert "SF998877" in cancel and "<form" not in cancel


def test_tracking_inline_refuses_hostile_and_final(owner_client, make_order):
    order = make_order(payment="credit_card")
    url = f"/orders/{order.number}/tracking"
    bad = owner_client.post(url, {"tracking_code": "<script>alert(1)</script>"}, htmx=True)
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert "<script>alert" not in body and "Tracking code may use" in body
    assert reload(order).tracking_code == ""
    db.session.execute(update(Order).where(Order.id == order.id).values(status="completed"))
    db.session.commit()
    locked = owner_client.get(url + "/edit", htmx=True).get_data(as_text=True)
    assert "keep their tracking code" in locked and "<form" not in locked
    refused = owner_client.post(url, {"tracking_code": "SF1"}, htmx=True)
    assert refused.status_code == 422 and "can no longer change" in refused.get_data(as_text=True)


def test_tracking_without_htmx_redirects(owner_client, make_order):
    order = make_order(payment="credit_card")
    response = owner_client.post(f"/orders/{order.number}/tracking", {"tracking_code": "SF5"})
    assert response.status_code == 302
    assert reload(order).tracking_code == "SF5"
    assert owner_client.get(f"/orders/{order.number}/tracking/edit").status_code == 302


# ------------------------------------------------------------------ login


def test_login_and_logout(client, owner):
    client.login(owner)
    assert client.get("/orders").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/orders").status_code == 302


def test_login_throttle(client, owner):
    token = client.token_from(client.get("/login").get_data(as_text=True))
    codes = [client.http.post("/login", data={"email": owner.email, "password": "wrong-password",
                                              "csrf_token": token}).status_code for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    right = client.http.post("/login", data={"email": owner.email,
                                             "password": "correct horse battery",
                                             "csrf_token": token})
    assert right.status_code == 429  # locked even with the right password


def test_login_does_not_redirect_off_site(client, owner):
    token = client.token_from(client.get("/login").get_data(as_text=True))
    response = client.http.post("/login?next=//evil.example/x",
                                data={"email": owner.email, "password": "correct horse battery",
                                      "csrf_token": token})
    assert response.headers["Location"] == "/orders"


def test_session_cookie_flags(client, owner):
    token = client.token_from(client.get("/login").get_data(as_text=True))
    response = client.http.post("/login", data={"email": owner.email,
                                                "password": "correct horse battery",
                                                "csrf_token": token})
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_deactivated_staff_is_signed_out(app, staff_client, staff):
    from domain.accounts import update_user

    update_user(staff.id, role="staff", active=False)
    assert staff_client.get("/orders").status_code == 302


def test_logo_upload_cleans_and_serves(owner_client, staff_client):
    import io

    from PIL import Image

    from domain.store import get_settings

    image = Image.new("RGB", (1600, 400), "navy")
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=b"Exif\x00\x00secret-gps")
    refused = owner_client.post("/settings/logo", {"logo": (io.BytesIO(b"<svg onload=alert(1)>"), "x.png")},
                                content_type="multipart/form-data")
    # Refused on the same page (issue 16: the error next to the file input), nothing stored.
    assert refused.status_code == 422 and get_settings().logo_path is None
    assert "svg onload" not in refused.get_data(as_text=True)
    assert staff_client.post("/settings/logo", {"logo": (io.BytesIO(buf.getvalue()), "l.jpg")},
                             content_type="multipart/form-data").status_code == 403
    ok = owner_client.post("/settings/logo", {"logo": (io.BytesIO(buf.getvalue()), "l.jpg")},
                           content_type="multipart/form-data")
    assert ok.status_code == 302
    db.session.expire_all()
    assert get_settings().logo_path
    served = owner_client.get("/logo")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    stored = Image.open(io.BytesIO(served.data))
    assert stored.size == (800, 200) and not stored.info.get("exif")
    assert b"secret-gps" not in served.data
    owner_client.post("/settings/logo/delete")
    assert owner_client.get("/logo").status_code == 404


def test_unpaid_list_opens_drafts_in_the_builder(owner_client, owner, make_variant):
    from domain.actors import Actor
    from domain.drafts import DraftInput, create_draft
    from domain.models import ShippingMethod
    from domain.orders import CustomerDetails

    shipping = db.session.query(ShippingMethod).filter_by(kind="delivery").first()
    draft = create_draft(DraftInput(
        customer=CustomerDetails(name="黃小姐", phone="6123 4567", address="沙田"),
        items=[(make_variant(stock=3).id, 2)], shipping_method_id=shipping.id),
        actor=Actor.staff(owner))
    html = owner_client.get("/orders?list=unpaid").get_data(as_text=True)
    assert f'href="/drafts/{draft.id}"' in html and "黃小姐" in html
    assert "Draft" in html
    paid = owner_client.get("/orders").get_data(as_text=True)
    assert "黃小姐" not in paid
    assert db.session.get(Variant, draft.lines[0].variant_id).stock == 3  # drafts hold nothing


def test_proof_is_shown_beside_the_total_and_reuse_is_flagged(owner_client, make_order):
    import io

    from PIL import Image

    from domain.proofs import submit_proof

    def png():
        buf = io.BytesIO()
        Image.new("RGB", (40, 60), "seagreen").save(buf, "PNG")
        buf.seek(0)
        return buf

    first, second = make_order(name="陳大文"), make_order(name="Amy Wong")
    submit_proof(first.id, png())
    submit_proof(second.id, png())  # the same picture on another order
    html = owner_client.get(order_page(second)).get_data(as_text=True)
    actions_card = html[html.index('id="actions-h"'):html.index('id="customer-h"')]
    assert f"/review/proofs/{second.number}/thumbnail" in actions_card
    assert "Should show <strong>HK$158.00</strong>" in actions_card
    assert "Confirm payment" in actions_card
    assert f"Same proof image as {first.number}" in actions_card
    for htmx in (False, True):
        assert owner_client.get(f"/review/proofs/{second.number}", htmx=htmx).status_code == 200


def test_htmx_list_pushes_the_canonical_url_and_history_restore_gets_a_page(owner_client, make_order):
    make_order()
    fragment = owner_client.get("/orders?q=%E9%99%B3&from=&to=&status=&page=1", htmx=True)
    assert fragment.headers["HX-Push-Url"] == "/orders?q=%E9%99%B3"
    restore = owner_client.get("/orders?status=processing", htmx=True,
                               headers={"HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


# ------------------------------------------------------------------ list URLs (no JavaScript)


@pytest.mark.parametrize("url,canonical", [
    ("/orders?q=%E9%99%B3&from=&to=&status=", "/orders?q=%E9%99%B3"),  # the no-JS Search button
    ("/orders?list=unpaid&q=&from=&to=", "/orders?list=unpaid"),
    ("/orders?q=&from=&to=&status=&page=1", "/orders"),
    ("/orders?q=+%E9%99%B3+&status=processing", "/orders?status=processing&q=%E9%99%B3"),
    ("/orders?list=paid&source=live_stream&source=api&source=api",
     "/orders?source=api&source=live_stream"),
])
def test_a_plain_get_with_empty_fields_goes_to_the_tidy_url(owner_client, make_order, url,
                                                            canonical):
    make_order()
    response = owner_client.get(url)
    assert response.status_code == 302 and response.headers["Location"] == canonical
    assert owner_client.get(canonical).status_code == 200  # no redirect loop


@pytest.mark.parametrize("url", ["/orders", "/orders?q=%E9%99%B3", "/orders?list=unpaid",
                                 "/orders?payment=1&q=x", "/orders?page=2"])
def test_a_canonical_list_url_is_served_as_it_is(owner_client, url):
    assert owner_client.get(url).status_code == 200


def test_a_refused_argument_is_explained_not_redirected_away(owner_client):
    response = owner_client.get("/orders?status=bogus&q=&from=2026-13-45")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Unknown status tab; showing all." in html and "From date must be a date" in html


def test_htmx_list_never_redirects_and_the_same_search_again_adds_no_history_entry(owner_client):
    fragment = owner_client.get("/orders?q=%E9%99%B3&from=&to=&status=", htmx=True)
    assert fragment.status_code == 200 and fragment.headers["HX-Push-Url"] == "/orders?q=%E9%99%B3"
    # sent again from the page already showing that list (Enter, Apply, leaving the box):
    # the entry is replaced, not pushed, whatever the order of the arguments
    again = owner_client.get("/orders?q=%E9%99%B3&from=&to=&status=processing", htmx=True,
                             headers={"HX-Current-URL":
                                      "http://shop.test/orders?q=%E9%99%B3&status=processing"})
    assert "HX-Push-Url" not in again.headers
    assert again.headers["HX-Replace-Url"] == "/orders?status=processing&q=%E9%99%B3"
    # from another list: a new entry
    other = owner_client.get("/orders?q=%E9%99%B3", htmx=True,
                             headers={"HX-Current-URL": "http://shop.test/orders"})
    assert other.headers["HX-Push-Url"] == "/orders?q=%E9%99%B3"
    assert "HX-Replace-Url" not in other.headers


def test_the_list_is_never_kept_by_the_browser(owner_client):
    for htmx in (False, True):
        response = owner_client.get("/orders?q=x", htmx=htmx)
        assert "no-store" in response.headers["Cache-Control"]
        # a fragment and the page share a URL: a cache must never answer one with the other
        assert "HX-Request" in response.headers["Vary"]
