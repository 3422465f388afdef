"""A PDF payment proof shows its first page as an image (issue 16): drawn by pdfium when
it is stored (or on first request for older PDFs), kept beside it, served only to whoever
may read the proof itself, and a placeholder when the PDF cannot be drawn."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from domain.db import db
from domain.images import PDF_PREVIEW_LONG_SIDE, clean_upload, pdf_first_page_png
from domain.models import Order
from domain.proofs import (
    delete_stored,
    pdf_preview_path,
    proof_download,
    resolve,
    submit_proof,
    thumbnail_path,
)

pytest_plugins = ["jobs_fixtures"]


def receipt_pdf(pagesize=A4, amount="HK$ 286.00", pages=2) -> bytes:
    """A real PDF made by reportlab: the amount big on page 1, something else after."""
    out = BytesIO()
    pdf = canvas.Canvas(out, pagesize=pagesize)
    pdf.setFont("Helvetica-Bold", 36)
    pdf.drawString(72, pagesize[1] - 144, "FPS")
    pdf.drawString(72, pagesize[1] - 200, amount)
    for n in range(2, pages + 1):
        pdf.showPage()
        pdf.drawString(72, 72, f"page {n}")
    pdf.save()
    return out.getvalue()


def damaged(pdf: bytes) -> bytes:
    """Passes the upload's structure check (header, objects, xref, %%EOF) but the
    content stream and cross-references are garbage: pdfium cannot draw it."""
    head, tail = pdf[:200], pdf[-400:]
    return head + b"\n1 0 obj\n<< /Broken" + b"\x00\xff" * 400 + b"\nxref\n" + tail


def png_of(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(BytesIO(data))
    image.load()
    return image


def assert_not_blank(image: Image.Image) -> None:
    low, high = image.convert("L").getextrema()
    assert low < 80 and high > 240  # black text on white paper
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 5


def proofed_pdf(make_order, pdf: bytes) -> Order:
    return submit_proof(make_order().id, BytesIO(pdf))


def card_of(body: str, number: str) -> str:
    start = body.index(f'id="queue-{number}"')
    return body[start:body.index("</li>", start)]


@pytest.fixture
def customer(app):
    """An anonymous browser holding one order's secret link."""
    from conftest import Client

    return lambda: Client(app)


# ------------------------------------------------------------------ the domain


def test_first_page_is_drawn_large_enough_to_read_and_not_blank():
    image = png_of(pdf_first_page_png(receipt_pdf()))
    # A4 is 595 x 842 pt: the long side is drawn at 1400 px, the short side in proportion.
    assert image.height == PDF_PREVIEW_LONG_SIDE and image.width == round(595.27 * 1400 / 841.89)
    assert_not_blank(image)
    # The amount sits near the top of page 1: that band has ink, the bottom has none.
    top = image.crop((0, 150, image.width, 450)).convert("L").getextrema()
    bottom = image.crop((0, 1200, image.width, 1400)).convert("L").getextrema()
    assert top[0] < 80 and bottom == (255, 255)


def test_a_small_receipt_is_not_blown_up_and_a_landscape_page_is_capped():
    slip = png_of(pdf_first_page_png(receipt_pdf(pagesize=(200, 500), amount="$286")))
    assert slip.size == (560, 1400)  # long side 1400 px (scale 2.8, under the 4x cap)
    tiny = png_of(pdf_first_page_png(receipt_pdf(pagesize=(100, 150), amount="$1")))
    assert tiny.size == (400, 600)  # 4x at most: a stamp is not drawn at 1400 px
    wide = png_of(pdf_first_page_png(receipt_pdf(pagesize=(1684, 1191))))  # A2 landscape
    assert wide.width == 1400 and wide.height < 1400


@pytest.mark.parametrize("pagesize", [(1_000_000, 1_000_000), (20_000, 600), (1, 14_000),
                                      (0.2, 300)], ids=["huge", "too wide", "sliver", "thin"])
def test_absurd_page_sizes_are_refused_not_drawn(pagesize):
    assert pdf_first_page_png(receipt_pdf(pagesize=pagesize)) is None


@pytest.mark.parametrize("data", [b"", b"%PDF-1.4\n", b"%PDF-1.7 garbage\n%%EOF", b"\x89PNG\r\n"],
                         ids=["empty", "header", "garbage", "not a pdf"])
def test_what_pdfium_cannot_open_gives_none(data):
    assert pdf_first_page_png(data) is None


def test_a_pdf_proof_keeps_its_first_page_beside_it(app, make_order):
    pdf = receipt_pdf()
    order = proofed_pdf(make_order, pdf)
    assert order.proof_path.endswith(".pdf")
    stored = resolve(order.proof_path)
    preview = resolve(pdf_preview_path(order.proof_path))
    assert stored.read_bytes() == pdf  # the PDF itself is kept as it came
    assert preview is not None and preview.parent == stored.parent
    assert preview.name == stored.name.removesuffix(".pdf") + ".page1.png"
    assert_not_blank(png_of(preview.read_bytes()))
    assert oct(preview.stat().st_mode & 0o777) == "0o600"
    delete_stored(order.proof_path)  # a replaced proof takes its preview with it
    assert not stored.exists() and not preview.exists()


def test_a_pdf_stored_before_previews_is_drawn_on_first_request_and_kept(app, make_order):
    order = proofed_pdf(make_order, receipt_pdf())
    preview = resolve(pdf_preview_path(order.proof_path))
    preview.unlink()  # as if uploaded before this change
    path, content_type, name, inline = proof_download(order, thumbnail=True)
    assert path == preview and preview.is_file() and content_type == "image/png" and inline
    assert name == f"payment-proof-{order.number}-page1.png"
    assert not list(preview.parent.glob("*.part"))
    assert thumbnail_path(order.proof_path) is None  # a backup does not miss what it can redraw


def test_a_damaged_pdf_is_still_a_proof_but_has_no_preview(app, make_order):
    bad = damaged(receipt_pdf())
    assert clean_upload(bad).thumbnail is None  # the upload check lets it through...
    order = proofed_pdf(make_order, bad)
    assert resolve(order.proof_path) is not None
    assert resolve(pdf_preview_path(order.proof_path)) is None  # ...nothing is drawn


# ------------------------------------------------------------------ the desk


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_queue_shows_a_pdf_proof_as_its_first_page_beside_the_amount(owner_client, make_order,
                                                                         htmx):
    order = proofed_pdf(make_order, receipt_pdf())
    headers = {"HX-Request": "true"} if htmx else {}
    response = owner_client.get("/review/", headers=headers)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert ("<html" in body) is not htmx
    card = card_of(body, order.number)
    img = f'<img src="/review/proofs/{order.number}/thumbnail" alt="First page of the PDF proof'
    assert card.count(img) == 2  # on the card and in its zoom dialog
    assert f'data-open-dialog="zoom-{order.number}"' in card and f'id="zoom-{order.number}"' in card
    assert re.search(r'<a class="btn btn-small" href="/review/proofs/' + order.number +
                     r'" [^>]*data-testid="pdf-open">PDF · open</a>', card)
    assert re.search(r"Should show <strong class='queue-total'>HK\$[\d,.]+</strong>", card)
    served = owner_client.get(f"/review/proofs/{order.number}/thumbnail")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert_not_blank(png_of(served.data))


def test_the_order_page_shows_the_first_page_beside_the_amount(owner_client, make_order):
    order = proofed_pdf(make_order, receipt_pdf())
    for headers in ({}, {"HX-Request": "true"}):
        page = owner_client.get(f"/orders/{order.number}", headers=headers).get_data(as_text=True)
        check = page[page.index('class="proof-check"'):]
        check = check[:check.index("proof-total")]
        assert f'<img class="proof-img" src="/review/proofs/{order.number}/thumbnail"' in check
        assert 'data-testid="pdf-open">PDF · open</a>' in check


def test_a_damaged_pdf_shows_the_placeholder_never_a_broken_image(owner_client, make_order):
    order = proofed_pdf(make_order, damaged(receipt_pdf()))
    body = owner_client.get("/review/").get_data(as_text=True)
    card = card_of(body, order.number)
    assert "Preview unavailable — open the PDF" in card and "<img" not in card
    assert f'href="/review/proofs/{order.number}"' in card  # the PDF itself, still
    page = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert 'data-testid="pdf-preview-unavailable"' in page
    assert f"/review/proofs/{order.number}/thumbnail" not in page
    # Asked for directly, the preview answers 404 (no image to give), the PDF stays there.
    assert owner_client.get(f"/review/proofs/{order.number}/thumbnail").status_code == 404
    assert owner_client.get(f"/review/proofs/{order.number}").mimetype == "application/pdf"


def test_a_huge_page_is_refused_safely_in_the_queue(owner_client, make_order):
    order = proofed_pdf(make_order, receipt_pdf(pagesize=(1_000_000, 1_000_000)))
    card = card_of(owner_client.get("/review/").get_data(as_text=True), order.number)
    assert 'data-testid="pdf-preview-unavailable"' in card and "<img" not in card
    assert resolve(pdf_preview_path(order.proof_path)) is None


def test_the_chinese_queue_says_the_same(owner_client, make_order, owner):
    owner.locale = "zh_Hant_HK"
    db.session.commit()
    good = proofed_pdf(make_order, receipt_pdf())
    bad = proofed_pdf(make_order, damaged(receipt_pdf()))
    body = owner_client.get("/review/").get_data(as_text=True)
    assert "開啟 PDF 原檔" in card_of(body, good.number)
    assert "PDF 第一頁" in card_of(body, good.number)
    assert "未能預覽，請開啟 PDF" in card_of(body, bad.number)


# ------------------------------------------------------------------ who may see it


def test_the_preview_reaches_only_its_own_order(app, client, customer, make_order):
    mine = proofed_pdf(make_order, receipt_pdf())
    other = proofed_pdf(make_order, receipt_pdf(amount="HK$ 999.00"))
    browser = customer()
    own = browser.get(f"/shop/o/{mine.public_token}/proof/thumbnail")
    assert own.status_code == 200 and own.mimetype == "image/png"
    assert own.data == resolve(pdf_preview_path(mine.proof_path)).read_bytes()
    assert own.headers["Cache-Control"] == "private, no-store"
    # Another order's link gets that order's preview, never this one's; a made-up or
    # tampered link gets nothing.
    theirs = browser.get(f"/shop/o/{other.public_token}/proof/thumbnail")
    assert theirs.data != own.data
    for token in ("x" * len(mine.public_token), mine.public_token[:-1] + "0",
                  "../" + other.public_token, mine.number):
        assert browser.get(f"/shop/o/{token}/proof/thumbnail").status_code == 404
    # The desk route needs a signed-in staff member.
    response = client.get(f"/review/proofs/{mine.number}/thumbnail")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get(f"/review/proofs/{mine.number}").status_code == 302


def test_the_desk_route_takes_only_order_numbers(owner_client, make_order):
    proofed_pdf(make_order, receipt_pdf())
    for number in ("../../etc/passwd", "X" * 40, "%2e%2e"):
        assert owner_client.get(f"/review/proofs/{number}/thumbnail").status_code == 404


def test_a_preview_file_that_left_the_proofs_folder_is_not_served(app, owner_client, make_order):
    order = proofed_pdf(make_order, receipt_pdf())
    preview = resolve(pdf_preview_path(order.proof_path))
    preview.unlink()
    outside = Path(app.config["UPLOAD_FOLDER"]) / "outside.png"
    outside.write_bytes(b"not yours")
    preview.symlink_to(outside)  # a link planted beside the proof points out of proofs/
    served = owner_client.get(f"/review/proofs/{order.number}/thumbnail")
    assert served.data != b"not yours"


# ------------------------------------------------------------------ backups


def test_a_backup_keeps_the_preview_and_does_not_miss_one_it_can_redraw(app, make_order, tmp_path):
    import json
    import tarfile

    from domain.backup import create_backup

    app.config["BACKUP_FOLDER"] = str(tmp_path / "backups")
    drawn = proofed_pdf(make_order, receipt_pdf())
    legacy = proofed_pdf(make_order, receipt_pdf(amount="HK$ 128.00"))
    drawn_path, legacy_path = drawn.proof_path, legacy.proof_path
    resolve(pdf_preview_path(legacy_path)).unlink()
    result = create_backup()
    with tarfile.open(result.path) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
    assert "uploads/" + pdf_preview_path(drawn_path) in names
    assert "uploads/" + drawn_path in names and "uploads/" + legacy_path in names
    # The legacy PDF has no preview yet: not "missing" (it is drawn on first request).
    assert manifest["missing_files"] == []
