"""Payment-proof uploads through the customer's order page: what is kept, what is refused."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from domain.db import db
from domain.models import Order, OrderEvent
from domain.proofs import MAX_BYTES

pytest_plugins = ["jobs_fixtures"]


@pytest.fixture
def customer(app):
    """An anonymous browser holding an order's link (and that page's CSRF token)."""
    from conftest import Client

    def open_order(order):
        client = Client(app)
        page = client.get(f"/shop/o/{order.public_token}")
        assert page.status_code == 200
        client._token = client.token_from(page.get_data(as_text=True))
        return client

    return open_order


def upload(client, order, data: bytes, name: str, content_type: str = "image/jpeg"):
    return client.post(f"/shop/o/{order.public_token}/proof",
                       {"proof": (BytesIO(data), name, content_type)},
                       content_type="multipart/form-data")


def stored_files(app) -> list[Path]:
    root = Path(app.config["UPLOAD_FOLDER"])
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def reload(order) -> Order:
    db.session.rollback()
    return db.session.get(Order, order.id)


def test_png_is_accepted_re_encoded_and_served_to_the_link(app, make_order, customer, samples):
    order = make_order()
    client = customer(order)
    response = upload(client, order, samples.image_bytes("PNG", (300, 200)), "receipt.png", "image/png")
    assert response.status_code == 302
    order = reload(order)
    assert order.status == "pending_confirmation"
    assert order.proof_path.startswith("proofs/") and order.proof_path.endswith(".png")
    assert "receipt" not in order.proof_path  # random name, not the customer's
    assert len(order.proof_sha256) == 64
    files = stored_files(app)
    # the proof and its thumbnail, nothing else
    assert sorted(f.name.split(".", 1)[1] for f in files) == ["png", "thumb.jpg"]
    assert not any("static" in str(f) for f in files)
    # served to the link holder, with headers that stop sniffing
    served = client.get(f"/shop/o/{order.public_token}/proof")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Disposition"].startswith("inline")
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert Image.open(BytesIO(served.data)).size == (300, 200)
    thumb = client.get(f"/shop/o/{order.public_token}/proof/thumbnail")
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    # and the page now shows it
    assert "Payment proof received" in client.get(f"/shop/o/{order.public_token}").get_data(as_text=True)


def test_jpeg_metadata_is_stripped_and_orientation_applied(app, make_order, customer, samples):
    order = make_order()
    client = customer(order)
    assert upload(client, order, samples.jpeg_with_gps(), "IMG_0001.JPG").status_code == 302
    order = reload(order)
    data = client.get(f"/shop/o/{order.public_token}/proof").data
    image = Image.open(BytesIO(data))
    assert image.format == "JPEG"
    assert image.size == (40, 80)  # rotated upright
    assert not image.getexif() and "exif" not in image.info and "comment" not in image.info
    assert b"SecretPhone" not in data and b"hello from the camera" not in data


def test_heic_is_accepted_and_stored_as_jpeg(app, make_order, customer, samples):
    order = make_order()
    client = customer(order)
    response = upload(client, order, samples.image_bytes("HEIF", (120, 90)), "IMG_1234.HEIC", "image/heic")
    assert response.status_code == 302
    order = reload(order)
    assert order.proof_path.endswith(".jpg")
    served = client.get(f"/shop/o/{order.public_token}/proof")
    assert served.mimetype == "image/jpeg" and Image.open(BytesIO(served.data)).size == (120, 90)


def test_pdf_is_stored_as_is_and_only_downloaded(app, make_order, customer, samples):
    order = make_order()
    client = customer(order)
    pdf = samples.minimal_pdf()
    # a wrong name and type do not matter: the content says PDF
    assert upload(client, order, pdf, "bank.txt", "text/plain").status_code == 302
    order = reload(order)
    served = client.get(f"/shop/o/{order.public_token}/proof")
    assert served.data == pdf and served.mimetype == "application/pdf"
    assert served.headers["Content-Disposition"].startswith("attachment")
    # Its "thumbnail" is its first page drawn as a PNG (tests/test_proof_pdf_preview.py).
    thumb = client.get(f"/shop/o/{order.public_token}/proof/thumbnail")
    assert thumb.mimetype == "image/png" and thumb.data.startswith(b"\x89PNG")


def hostile(name: str, f) -> tuple[bytes, str, str, str]:
    """(content, file name, Content-Type sent, expected message) of each attack."""
    return {
        "svg": lambda: (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>',
                        "receipt.svg", "image/svg+xml", "not accepted"),
        "html renamed .jpg": lambda: (b"<!doctype html><script>alert(document.cookie)</script>",
                                      "receipt.jpg", "image/jpeg", "not accepted"),
        "empty": lambda: (b"", "empty.png", "image/png", "empty"),
        "10 MB + 1 byte": lambda: (b"\xff\xd8\xff" + b"\0" * (MAX_BYTES - 2), "big.jpg",
                                   "image/jpeg", "larger than 10 MB"),
        "png bomb": lambda: (f.png_bomb(), "bomb.png", "image/png", "too large"),
        "png just over the pixel limit": lambda: (f.png_bomb(7000, 7000), "big.png", "image/png",
                                                  "too large"),
        "php disguised as jpg": lambda: (b"<?php system($_GET['c']); ?>", "x.php.jpg",
                                         "image/jpeg", "not accepted"),
        "truncated jpeg": lambda: (f.image_bytes("JPEG", (200, 200))[:300], "cut.jpg",
                                   "image/jpeg", "could not be read"),
        "pdf with javascript": lambda: (
            f.minimal_pdf(b"/AA << /O << /S /JavaScript /JS (app.alert(1)) >> >> "),
            "r.pdf", "application/pdf", "scripts"),
        "pdf header only": lambda: (b"%PDF-1.7\n" + b"A" * 100, "r.pdf", "application/pdf",
                                    "damaged"),
    }[name]()


HOSTILE = ["svg", "html renamed .jpg", "empty", "10 MB + 1 byte", "png bomb",
           "png just over the pixel limit", "php disguised as jpg", "truncated jpeg",
           "pdf with javascript", "pdf header only"]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_uploads_are_refused_and_leave_nothing(app, make_order, customer, samples, name):
    data, filename, content_type, message = hostile(name, samples)
    if name == "10 MB + 1 byte":
        assert len(data) == MAX_BYTES + 1
    order = make_order()
    client = customer(order)
    response = upload(client, order, data, filename, content_type)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    order = reload(order)
    assert order.status == "pending_payment"
    assert order.proof_path is None and order.proof_sha256 is None
    assert stored_files(app) == []
    assert not db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == order.id,
                                                          OrderEvent.type == "proof_uploaded"))


class CountingStream:
    """A multipart body of ``size`` bytes made on demand, counting what the app reads."""

    def __init__(self, size: int, csrf_token: str):
        self.head = (f'--B\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
                     f'{csrf_token}\r\n--B\r\nContent-Disposition: form-data; name="proof"; '
                     f'filename="huge.jpg"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
        self.size, self.pos, self.sent = size, 0, 0

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:  # the test client measures the body
        self.pos = offset if whence == 0 else self.size + offset
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        head = self.head[self.pos:self.pos + n]
        chunk = head + b"\0" * (n - len(head))
        self.pos += n
        self.sent += n
        return chunk

    readline = read


def assert_order_page_with_too_large(response, order):
    html = response.get_data(as_text=True)
    assert response.status_code == 413
    # the customer's own order page, with the upload form to try a smaller file ...
    assert f"Order {order.number}" in html and "Upload proof" in html and "How to pay" in html
    # ... and the very message a 10 MB + 1 byte file gets, inline
    assert '<div class="flash flash-error" role="alert">The file is larger than 10 MB.</div>' in html


@pytest.mark.parametrize("megabytes", [12, 30])
def test_request_over_the_size_limit_gets_the_order_page_and_its_message(
        app, make_order, customer, megabytes):
    order = make_order()
    client = customer(order)
    response = upload(client, order, b"\xff\xd8\xff" + b"\0" * (megabytes * 1024 * 1024),
                      "huge.jpg")
    assert_order_page_with_too_large(response, order)
    # the same sentence as a file just over 10 MB (which fits in the request limit)
    small = upload(client, order, b"\xff\xd8\xff" + b"\0" * (MAX_BYTES - 2), "big.jpg")
    assert small.status_code == 422
    assert '<div class="flash flash-error" role="alert">The file is larger than 10 MB.</div>' \
        in small.get_data(as_text=True)
    order = reload(order)
    assert order.status == "pending_payment" and order.proof_path is None
    assert stored_files(app) == []
    assert not db.session.scalar(select(OrderEvent).where(OrderEvent.order_id == order.id,
                                                          OrderEvent.type == "proof_uploaded"))


def test_request_over_the_size_limit_is_refused_before_reading(app, make_order, customer):
    order = make_order()
    client = customer(order)
    body = CountingStream(30 * 1024 * 1024, client._token)
    response = client.post(f"/shop/o/{order.public_token}/proof", csrf=False, input_stream=body,
                           content_length=body.size, content_type="multipart/form-data; boundary=B")
    assert_order_page_with_too_large(response, order)
    assert body.sent == 0  # refused from its Content-Length: not one byte read
    assert reload(order).status == "pending_payment" and stored_files(app) == []


def test_other_over_limit_requests_keep_the_plain_too_large_page(app, make_order, customer):
    order = make_order()
    client = customer(order)
    response = client.post("/shop/cart/add", {"blob": "x" * (12 * 1024 * 1024)})
    assert response.status_code == 413 and "Upload proof" not in response.get_data(as_text=True)
    # an unknown link over the limit learns nothing about orders
    guessed = client.post(f"/shop/o/{order.public_token}x/proof",
                          {"proof": (BytesIO(b"\0" * (12 * 1024 * 1024)), "x.jpg", "image/jpeg")},
                          content_type="multipart/form-data")
    assert guessed.status_code == 413 and order.number not in guessed.get_data(as_text=True)


def test_no_file_chosen_gets_a_message(app, make_order, customer):
    order = make_order()
    client = customer(order)
    response = client.post(f"/shop/o/{order.public_token}/proof", {},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and "Choose a file" in response.get_data(as_text=True)


def test_re_upload_while_pending_confirmation_replaces_the_proof(app, make_order, customer,
                                                                 samples):
    order = make_order()
    client = customer(order)
    upload(client, order, samples.image_bytes("PNG", colour="red"), "a.png", "image/png")
    first = reload(order).proof_path
    upload(client, order, samples.image_bytes("JPEG", colour="green"), "b.jpg")
    order = reload(order)
    assert order.proof_path != first and order.status == "pending_confirmation"
    assert {f.name for f in stored_files(app)} == {
        Path(order.proof_path).name, Path(order.proof_path).stem + ".thumb.jpg"}
    assert db.session.scalars(select(OrderEvent.details).where(
        OrderEvent.order_id == order.id, OrderEvent.type == "proof_uploaded")).all()[-1]["replaced"]


def test_upload_refused_once_the_order_moved_on(app, make_order, customer, samples):
    from domain.actors import Actor
    from domain.orders import reject_order

    order = make_order()
    client = customer(order)
    reject_order(order.id, "Out of stock", actor=Actor("staff", 1, "T"))
    response = upload(client, order, samples.image_bytes(), "late.png", "image/png")
    assert response.status_code == 422
    assert "cannot be given a payment proof" in response.get_data(as_text=True)
    assert reload(order).status == "canceled" and stored_files(app) == []


def test_proof_files_reach_only_their_own_link_and_staff(app, make_order, customer, owner_client,
                                                         client, samples):
    mine, other = make_order(), make_order()
    upload(customer(mine), mine, samples.image_bytes(), "a.png", "image/png")
    mine = reload(mine)
    # another order's link, a guessed link, and an anonymous visitor get nothing
    assert client.get(f"/shop/o/{other.public_token}/proof").status_code == 404
    guessed = mine.public_token[:-1] + ("y" if mine.public_token.endswith("x") else "x")
    assert client.get(f"/shop/o/{guessed}/proof").status_code == 404
    anonymous = client.get(f"/review/proofs/{mine.number}")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    # staff get it from the back office
    staff_view = owner_client.get(f"/review/proofs/{mine.number}")
    assert staff_view.status_code == 200 and staff_view.mimetype == "image/png"
    assert staff_view.headers["X-Content-Type-Options"] == "nosniff"
    # nothing is reachable under /static
    assert client.get(f"/static/{mine.proof_path}").status_code == 404


def test_upload_that_loses_the_race_to_the_deadline_says_what_happened_and_what_next(
        app, place_unpaid, customer, samples):
    from domain.deadlines import sweep_overdue
    from domain.store import get_settings

    settings = get_settings()
    settings.phone, settings.email = "2345 6789", "hello@shop.test"
    db.session.commit()
    # the customer opened the page while the order still awaited payment ...
    order, variant = place_unpaid(placed_ago=timedelta(days=3), deadline_days=2)
    client = customer(order)
    # ... the deadline passed and the sweep canceled it before the file arrived
    order_id = order.id
    assert sweep_overdue() == 1
    order = db.session.get(Order, order_id)
    response = upload(client, order, samples.image_bytes(), "receipt.png", "image/png")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert (f"The payment deadline passed before your file arrived, so order {order.number} "
            "was canceled and the file was not kept.") in html
    # what to do next: contact the store (with its details) or order again from the shop
    steps = html[html.index('data-testid="next-steps"'):]
    assert f"If you have already paid, contact My Shop with your order number {order.number}" in steps
    assert 'href="tel:23456789"' in steps and 'href="mailto:hello@shop.test"' in steps
    assert "place a new order" in steps and 'href="/shop/"' in steps
    assert "Upload proof" not in html  # no form that cannot work any more
    order = reload(order)
    assert order.status == "canceled" and order.proof_path is None and stored_files(app) == []
    # the next steps stay on the page for a later visit too
    assert 'data-testid="next-steps"' in client.get(f"/shop/o/{order.public_token}").get_data(
        as_text=True)


def test_an_order_the_shop_canceled_keeps_the_plain_refusal(app, make_order, customer, samples):
    from domain.actors import Actor
    from domain.orders import reject_order

    order = make_order()
    client = customer(order)
    reject_order(order.id, "Out of stock", actor=Actor("staff", 1, "T"))
    html = upload(client, order, samples.image_bytes(), "late.png", "image/png").get_data(
        as_text=True)
    assert "deadline" not in html and 'data-testid="next-steps"' not in html
