"""Product images: cleaned like proofs, stored under random names, served publicly,
shown in the store and beside order lines (domain/product_images.py, blueprints/media.py,
blueprints/products/images.py)."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from conftest import browser_login
from flask import render_template
from PIL import Image
from sqlalchemy import event

from domain import product_images
from domain.db import db
from domain.errors import ValidationError
from domain.models import Product, Variant

HTML = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(1)</script></svg>')


def jpeg_with_gps(size=(2400, 1600)) -> bytes:
    image = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {1: "N", 2: (22.0, 17.0, 0.0), 3: "E", 4: (114.0, 10.0, 0.0)}  # GPS IFD
    out = BytesIO()
    image.save(out, format="JPEG", exif=exif)
    data = out.getvalue()
    assert b"SpyCam" in data
    return data


def png_bytes(size=(300, 200), mode="RGBA", color=(0, 128, 255, 128)) -> bytes:
    out = BytesIO()
    Image.new(mode, size, color).save(out, format="PNG")
    return out.getvalue()


def webp_bytes(size=(300, 300)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(out, format="WEBP")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    data = bytearray(png_bytes((1, 1), "RGB", (0, 0, 0)))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


class CountingStream:
    """An upload that never ends and counts what was read from it."""

    def __init__(self):
        self.read_bytes = 0

    def read(self, n=-1):
        n = 20 * 1024 * 1024 if n is None or n < 0 else min(n, 20 * 1024 * 1024)
        self.read_bytes += n
        return b"\xff\xd8\xff" + b"\0" * (n - 3)


@pytest.fixture
def product(make_variant):
    return make_variant(name="Butter cookies").product


def folder(app) -> Path:
    return Path(app.config["UPLOAD_FOLDER"]) / "products"


def stored_files(app) -> list[str]:
    return sorted(p.name for p in folder(app).glob("*")) if folder(app).exists() else []


def reload(product) -> Product:
    db.session.rollback()  # a fresh snapshot: see what another request or thread wrote
    return db.session.get(Product, product.id)


# ------------------------------------------------------------------ domain


def test_jpeg_is_reencoded_without_exif_shrunk_and_thumbnailed(app, product):
    # when
    product_images.set_product_image(product.id, BytesIO(jpeg_with_gps()))
    # then
    path = reload(product).image_path
    name = path.removeprefix("products/")
    assert path.startswith("products/") and product_images.NAME.fullmatch(name)
    data = (folder(app) / name).read_bytes()
    assert b"SpyCam" not in data and b"Exif" not in data
    with Image.open(BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (1200, 800)
        assert not image.getexif()
    with Image.open(folder(app) / product_images.thumbnail_name(name)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 160
    assert stored_files(app) == sorted([name, product_images.thumbnail_name(name)])


def test_transparent_png_stays_png_and_webp_becomes_jpeg(app, product, make_variant):
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    with Image.open(folder(app) / reload(product).image_path.split("/")[1]) as image:
        assert image.format == "PNG" and image.mode == "RGBA" and image.size == (300, 200)
    other = make_variant(name="Tea").product
    product_images.set_product_image(other.id, BytesIO(webp_bytes()))
    assert reload(other).image_path.endswith(".jpg")


@pytest.mark.parametrize("data", [HTML, SVG, b"GIF89a" + b"\0" * 40, b"%PDF-1.4\n" + HTML,
                                  b"\xff\xd8\xff\xe0" + HTML,  # JPEG magic, HTML inside
                                  b"\x89PNG\r\n\x1a\n" + HTML],
                         ids=["html", "svg", "gif", "pdf", "jpeg-polyglot", "png-polyglot"])
def test_html_svg_and_polyglots_are_refused_and_nothing_changes(app, product, data):
    # given an image already there
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    before_path, before_files = reload(product).image_path, stored_files(app)
    # when / then
    with pytest.raises(ValidationError) as refused:
        product_images.set_product_image(product.id, BytesIO(data))
    assert "PNG, JPEG or WebP" in str(refused.value)
    assert reload(product).image_path == before_path
    assert stored_files(app) == before_files


def test_a_real_jpeg_with_html_appended_keeps_only_the_pixels(app, product):
    product_images.set_product_image(product.id, BytesIO(jpeg_with_gps((400, 300)) + HTML))
    data = (folder(app) / reload(product).image_path.split("/")[1]).read_bytes()
    assert b"<script" not in data and b"html" not in data


def test_a_20_mb_upload_is_refused_after_reading_just_past_the_limit(app, product):
    stream = CountingStream()
    with pytest.raises(ValidationError) as refused:
        product_images.set_product_image(product.id, stream)
    assert str(refused.value) == "The file is larger than 5 MB."
    assert stream.read_bytes <= product_images.MAX_BYTES + 1
    assert reload(product).image_path is None and stored_files(app) == []


@pytest.mark.parametrize("size", [(7000, 7000), (12000, 12000)],
                         ids=["over-our-limit", "over-pillows-hard-limit"])
def test_decompression_bombs_are_refused(app, product, size):
    with pytest.raises(ValidationError) as refused:
        product_images.set_product_image(product.id, BytesIO(png_claiming(*size)))
    assert "megapixels" in str(refused.value)
    assert reload(product).image_path is None and stored_files(app) == []


def test_empty_and_damaged_files_are_refused(app, product):
    with pytest.raises(ValidationError, match="empty"):
        product_images.set_product_image(product.id, BytesIO(b""))
    with pytest.raises(ValidationError, match="damaged"):
        product_images.set_product_image(product.id, BytesIO(png_bytes()[:60]))
    assert stored_files(app) == []


def test_replacing_removes_the_old_files_and_remove_clears_everything(app, product):
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    first = reload(product).image_path
    product_images.set_product_image(product.id, BytesIO(jpeg_with_gps((500, 500))))
    second = reload(product).image_path
    assert first != second
    name = second.split("/")[1]
    assert stored_files(app) == sorted([name, product_images.thumbnail_name(name)])
    product_images.remove_product_image(product.id)
    assert reload(product).image_path is None and stored_files(app) == []


def test_thumbnails_for_order_lines_take_one_query_and_skip_missing_files(app, make_variant):
    products = [make_variant(name=f"P{i}").product for i in range(4)]
    for p in products[:3]:
        product_images.set_product_image(p.id, BytesIO(png_bytes((50, 50))))
    gone = reload(products[2]).image_path.split("/")[1]
    (folder(app) / product_images.thumbnail_name(gone)).unlink()
    ids = [p.id for p in products] + [None, 999]
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        found = product_images.thumbnails_for(ids)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert set(found) == {products[0].id, products[1].id}
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


@pytest.mark.parametrize("name", ["../shopdesk.db", "..%2Fx", ".htaccess", "a" * 32 + ".svg",
                                  "A" * 32 + ".jpg", "a" * 32 + ".jpg/..", "a" * 31 + ".jpg", ""])
def test_media_file_only_takes_stored_names(app, name):
    assert product_images.media_file(name) is None


# ------------------------------------------------------------------ views


def upload(client, product, data, *, htmx=False, csrf=True, filename="photo.png"):
    return client.post(f"/products/{product.id}/image", data={"image": (BytesIO(data), filename)},
                       htmx=htmx, csrf=csrf, content_type="multipart/form-data")


def test_upload_with_htmx_returns_the_widget(staff_client, product, app):
    response = upload(staff_client, product, jpeg_with_gps((600, 400)), htmx=True, filename="x.txt")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="product-image"' in html and "<html" not in html
    assert "Image saved." in html and 'alt="Butter cookies"' in html
    assert "Remove image" in html
    assert reload(product).image_path


def test_upload_without_htmx_redirects_to_the_edit_page(staff_client, product):
    response = upload(staff_client, product, png_bytes())
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/products/{product.id}/edit#product-image")
    assert reload(product).image_path


def test_refused_upload_shows_the_reason_in_the_widget(staff_client, product, app):
    response = upload(staff_client, product, SVG, htmx=True, filename="logo.png")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This file is not a PNG, JPEG or WebP image." in html and 'aria-invalid="true"' in html
    assert reload(product).image_path is None and stored_files(app) == []
    # without htmx: back to the page with the message flashed
    response = upload(staff_client, product, HTML)
    assert response.status_code == 302
    with staff_client.http._http.session_transaction() as session:
        assert any("not a PNG, JPEG or WebP" in str(m) for _c, m in session.get("_flashes", []))


def test_upload_without_a_file_is_refused(staff_client, product):
    response = staff_client.post(f"/products/{product.id}/image", data={}, htmx=True)
    assert response.status_code == 422 and "Choose an image." in response.get_data(as_text=True)


def test_refusal_reads_in_chinese(staff_client, product, app):
    from domain.store import get_settings

    get_settings().language = "zh_Hant_HK"
    db.session.commit()
    html = upload(staff_client, product, HTML, htmx=True).get_data(as_text=True)
    assert "PNG、JPEG 或 WebP" in html


def test_a_20_mb_request_is_refused_before_it_is_read(staff_client, product, app):
    response = upload(staff_client, product, b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024), htmx=True)
    assert response.status_code == 422
    assert "The file is larger than 5 MB." in response.get_data(as_text=True)
    assert reload(product).image_path is None and stored_files(app) == []


def test_upload_and_remove_need_csrf(staff_client, product, app):
    assert upload(staff_client, product, png_bytes(), csrf=False).status_code == 400
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    assert staff_client.post(f"/products/{product.id}/image/remove", csrf=False).status_code == 400
    assert reload(product).image_path is not None


def test_anonymous_upload_and_remove_go_to_login(client, product, app):
    token = client.token_from(client.get("/login").get_data(as_text=True))
    for url, data in ((f"/products/{product.id}/image", {"image": (BytesIO(png_bytes()), "a.png")}),
                      (f"/products/{product.id}/image/remove", {})):
        response = client.http.post(url, data={**data, "csrf_token": token},
                                    content_type="multipart/form-data")
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert reload(product).image_path is None and stored_files(app) == []


def test_remove_with_and_without_htmx(staff_client, product, app):
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    response = staff_client.post(f"/products/{product.id}/image/remove", htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Image removed." in html and "Remove image" not in html
    assert reload(product).image_path is None and stored_files(app) == []
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    response = staff_client.post(f"/products/{product.id}/image/remove")
    assert response.status_code == 302 and reload(product).image_path is None


def test_unknown_product_is_404(staff_client):
    assert upload(staff_client, type("P", (), {"id": 999})(), png_bytes()).status_code == 404


def test_widget_on_the_new_product_page_asks_to_save_first(app):
    with app.test_request_context("/products/new"):
        html = render_template("products/_image.html", product=None)
    assert "Save the product first to add an image." in html and "<form" not in html


def test_widget_says_when_the_file_is_missing(app, product):
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    for path in folder(app).glob("*"):
        path.unlink()
    with app.test_request_context(f"/products/{product.id}/edit"):
        html = render_template("products/_image.html", product=reload(product))
    assert "The image file is missing." in html and "<img" not in html


# ------------------------------------------------------------------ media route


def test_media_serves_the_picture_and_thumbnail_publicly(client, product, app):
    product_images.set_product_image(product.id, BytesIO(jpeg_with_gps((300, 300))))
    name = reload(product).image_path.split("/")[1]
    for each in (name, product_images.thumbnail_name(name)):
        response = client.get(f"/media/products/{each}")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.data[:3] == b"\xff\xd8\xff"


def test_media_may_be_cached_for_a_year(client, product, app):
    product_images.set_product_image(product.id, BytesIO(png_bytes()))
    response = client.get("/media/products/" + reload(product).image_path.split("/")[1])
    cache = response.headers["Cache-Control"]
    assert "public" in cache and "max-age=31536000" in cache and "immutable" in cache


@pytest.mark.parametrize("url", ["/media/products/../shopdesk.db", "/media/products/..%2F..%2Fshopdesk.db",
                                 "/media/products/%2e%2e/x", "/media/products/" + "a" * 32 + ".jpg",
                                 "/media/products/" + "a" * 32 + ".svg", "/media/proofs/x.jpg",
                                 "/media/products/"])
def test_media_404s_for_traversal_and_unknown_names(client, url, app):
    assert client.get(url).status_code == 404


# ------------------------------------------------------------------ store and order pages


def test_store_shows_the_picture_or_a_placeholder_and_hides_removed_variants(client, app, make_variant):
    with_pic = make_variant(name="Almond <b>tart</b>").product
    plain = make_variant(name="Plain biscuits").product
    gone_file = make_variant(name="Gone file").product
    product_images.set_product_image(with_pic.id, BytesIO(png_bytes()))
    product_images.set_product_image(gone_file.id, BytesIO(png_bytes()))
    for path in folder(app).glob(reload(gone_file).image_path.split("/")[1].split(".")[0] + "*"):
        path.unlink()
    removed = Variant(product_id=plain.id, name="Discontinued flavour", sku="OLD-1", price_cents=100,
                      stock=None, active=False)
    db.session.add(removed)
    db.session.commit()

    html = client.get("/shop/").get_data(as_text=True)

    name = reload(with_pic).image_path.split("/")[1]
    assert f'src="/media/products/{name}"' in html
    assert 'alt="Almond &lt;b&gt;tart&lt;/b&gt;"' in html
    assert f'data-testid="product-placeholder-{plain.id}"' in html
    assert f'data-testid="product-placeholder-{gone_file.id}"' in html  # not a broken image
    assert "Discontinued flavour" not in html and "Plain biscuits" in html


def test_order_lines_show_thumbnails_when_the_product_has_an_image(staff_client, app, make_variant,
                                                                   make_order):
    pictured, plain = make_variant(name="Pictured"), make_variant(name="Plain")
    product_images.set_product_image(pictured.product_id, BytesIO(png_bytes()))
    order = make_order(items=[(pictured.id, 1), (plain.id, 2)])
    thumb = product_images.thumbnail_name(reload(pictured.product).image_path.split("/")[1])
    html = staff_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert html.count('data-testid="line-thumb"') == 1
    assert f'src="/media/products/{thumb}"' in html


# ------------------------------------------------------------------ browser + screenshots


def test_store_and_order_page_in_chromium(app, live_server, browser, owner, make_variant, make_order):
    shots = Path("/tmp/shots/h5")
    shots.mkdir(parents=True, exist_ok=True)
    colours = [(214, 140, 69), (120, 80, 40), (240, 200, 120)]
    variants = []
    for i, (name, colour) in enumerate(zip(["Butter cookies 牛油曲奇", "Chocolate chip", "Egg rolls 蛋卷"],
                                           colours, strict=True)):
        v = make_variant(name=name, variant=["Box of 12", "Tin", "Gift box"][i], price_cents=9800 + i * 1000)
        image = Image.new("RGB", (900, 700), colour)
        for x in range(0, 900, 60):  # some texture, so the crop and scale are visible
            image.paste((255, 255, 255), (x, 300, x + 30, 400))
        out = BytesIO()
        image.save(out, format="JPEG")
        if i < 2:
            product_images.set_product_image(v.product_id, BytesIO(out.getvalue()))
        variants.append(v)
    order = make_order(items=[(variants[0].id, 2), (variants[1].id, 1), (variants[2].id, 1)])

    # the desktop round adds the third product's image through the widget
    for width, label, pictured in ((1280, "desktop", 2), (390, "phone", 3)):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{live_server}/shop/")
        pics = page.locator("img.product-pic")
        assert pics.count() == pictured
        page.wait_for_function("() => [...document.querySelectorAll('img.product-pic')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(shots / f"store-{label}.png"), full_page=True)
        browser_login(page, live_server, owner.email)
        page.goto(f"{live_server}/orders/{order.number}")
        assert page.locator("img[data-testid=line-thumb]").count() == pictured
        page.wait_for_function("() => [...document.querySelectorAll('img[data-testid=line-thumb]')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        box = page.locator("img[data-testid=line-thumb]").first.bounding_box()
        assert round(box["width"]) == 40 and round(box["height"]) == 40
        page.locator("#items-h").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"order-lines-{label}.png"), full_page=True)

        # the widget on the edit page: upload through htmx (multipart, CSRF header), swapped in place
        page.goto(f"{live_server}/products/{variants[2].product_id}/edit")
        page.set_input_files("#product-image-file", files=[{
            "name": "rolls.webp", "mimeType": "image/webp", "buffer": webp_bytes((640, 480))}])
        page.click("#product-image button[type=submit]:has-text('Upload image')")
        page.wait_for_selector("#product-image [role=status]")
        assert page.url.endswith("/edit")  # swapped, not navigated
        page.wait_for_function("() => document.querySelector('img[data-testid=product-image]').naturalWidth > 0")
        page.locator("#product-image").screenshot(path=str(shots / f"widget-{label}.png"))
        page.close()
    assert reload(variants[2].product).image_path
