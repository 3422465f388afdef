"""Accessibility in real Chromium (issue 16): axe-core (from the npm registry, like htmx)
runs inside the pages a merchant and a customer use most, at 1280 and 390 px, and finds
no serious or critical violation; on the phone every control is at least 44 x 44 px.

The axe source comes from node_modules (package.json's devDependencies, installed by
`make setup`). It is evaluated in the page through the DevTools protocol, so the
page's own Content-Security-Policy stays as it is served.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from conftest import browser_login

from domain.actors import Actor
from domain.orders import confirm_payment

pytestmark = pytest.mark.browser
pytest_plugins = ["jobs_fixtures"]

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1280, 390)

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): ` + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '));
}"""

# Controls smaller than 44 x 44 px. A link inside running text is exempt (WCAG 2.5.8's
# inline exception); a checkbox or radio counts its label's box, which takes the tap.
SMALL_CONTROLS = """() => {
  const out = [];
  for (const el of document.querySelectorAll(
      'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button]')) {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!box.width || !box.height || style.visibility === 'hidden') continue;
    if (el.closest('[hidden], dialog:not([open])')) continue;
    const details = el.closest('details:not([open])');
    if (details && !el.closest('summary')) continue;
    const parent = el.parentElement;
    if (el.tagName === 'A' && style.display === 'inline' && !el.closest('nav') && parent &&
        parent.textContent.trim().length > el.textContent.trim().length) continue;
    let w = box.width, h = box.height;
    const label = (el.type === 'checkbox' || el.type === 'radio') && el.closest('label');
    if (label) { const l = label.getBoundingClientRect(); w = Math.max(w, l.width); h = Math.max(h, l.height); }
    if (w < 43.5 || h < 43.5)
      out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${[...el.classList].join('.')} ` +
               `${Math.round(w)}x${Math.round(h)} "${(el.innerText || el.value || '').trim().slice(0, 30)}"`);
  }
  return out;
}"""


@pytest.fixture
def axe_source():
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `make setup` (npm installs axe-core)")
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def shop(make_order, samples):
    """A store with an order of each kind the pages show."""
    from domain.proofs import submit_proof

    staff = Actor("staff", None, "Test")
    unpaid = make_order(name="陳大文")
    proofed = submit_proof(make_order(name="Amy Wong").id,
                           BytesIO(samples.image_bytes("JPEG", (300, 400), "red")))
    paid = make_order(name="李小姐")
    confirm_payment(paid.id, actor=staff)
    return {"unpaid": unpaid, "proofed": proofed, "paid": paid}


def check(page, axe_source, url, *, phone):
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.evaluate(axe_source)
    problems = page.evaluate(RUN_AXE)
    small = page.evaluate(SMALL_CONTROLS) if phone else []
    return ([f"{url}: {p}" for p in problems], [f"{url}: {s}" for s in small])


@pytest.mark.parametrize("width", WIDTHS)
def test_desk_pages_pass_axe_and_have_touch_sized_controls(live_server, browser, owner, shop,
                                                           axe_source, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    browser_login(page, live_server, owner.email)
    violations, small = [], []
    for path in ("/orders", "/orders?status=todo", f"/orders/{shop['paid'].number}",
                 f"/orders/{shop['proofed'].number}", "/review/", "/drafts/new",
                 "/settings/store", "/settings/payments"):
        found, tiny = check(page, axe_source, live_server + path, phone=width < 760)
        violations += found
        small += tiny
    assert violations == [], "\n".join(violations)
    assert small == [], "\n".join(small)


@pytest.mark.parametrize("width", WIDTHS)
def test_customer_pages_pass_axe_and_have_touch_sized_controls(live_server, browser, shop,
                                                               make_variant, axe_source, width):
    make_variant(name="曲奇禮盒", stock=5)
    page = browser.new_page(viewport={"width": width, "height": 900})
    violations, small = [], []
    found, tiny = check(page, axe_source, f"{live_server}/shop/", phone=width < 760)
    violations += found
    small += tiny
    page.locator("form.add-form button[type=submit]").first.click()  # the checkout has an item
    page.wait_for_load_state("networkidle")
    for path in ("/shop/cart", f"/shop/o/{shop['unpaid'].public_token}"):
        found, tiny = check(page, axe_source, live_server + path, phone=width < 760)
        violations += found
        small += tiny
    assert violations == [], "\n".join(violations)
    assert small == [], "\n".join(small)
