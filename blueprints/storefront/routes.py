"""Customer side: product list, cart, checkout, the order page behind its secret link."""

from __future__ import annotations

from urllib.parse import quote as url_quote

from flask import Blueprint, abort, current_app, flash, redirect, request, session, url_for
from flask_babel import force_locale, format_timedelta, ngettext
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints.i18n import current_locale, order_locale, translate_error, use_order_locale
from blueprints.rendering import render
from blueprints.storefront.forms import (
    AddToCartForm,
    CheckoutForm,
    EmailLinkForm,
    PaymentChoiceForm,
    ProofForm,
    SetQuantityForm,
    first_error,
)
from blueprints.storefront.proof_files import proof_response
from domain import drafts as draft_actions
from domain import payments, proofs
from domain.actors import Actor
from domain.db import db
from domain.errors import DomainError, ResendLimit
from domain.models import PaymentMethod, utcnow
from domain.notify import resend
from domain.notify.email import public_url
from domain.orders import (
    Checkout,
    CustomerDetails,
    get_order,
    get_order_by_token,
    payment_deadline,
)
from domain.payments import sellable_catalog
from domain.proofs import customer_messages
from domain.status import can_upload_proof
from domain.store import enabled_payment_methods, enabled_shipping_methods, get_settings
from jobs.deadlines import schedule_deadline_jobs

bp = Blueprint("storefront", __name__, url_prefix="/shop")

CART_KEY = "cart"
MAX_CART_LINES = 50


@bp.after_request
def private_pages(response):
    """Secret links must not leak through Referer headers, caches or search engines."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    if request.endpoint and request.endpoint.startswith(("storefront.order", "storefront.draft")):
        response.headers["Cache-Control"] = "private, no-store"
    return response


# ------------------------------------------------------------------ cart (in the session)


def _cart() -> dict[int, int]:
    raw = session.get(CART_KEY) or {}
    cart = {}
    for key, qty in raw.items():
        if str(key).isdigit() and isinstance(qty, int) and qty > 0:
            cart[int(key)] = qty
    return cart


def _save_cart(cart: dict[int, int]) -> None:
    session[CART_KEY] = {str(k): v for k, v in cart.items() if v > 0}


def _variant_id(form) -> int | None:
    value = (form.variant_id.data or "").strip()
    return int(value) if value.isdigit() and len(value) < 10 else None


def _methods(form: PaymentChoiceForm, *, with_shipping: bool) -> tuple[list, list]:
    payment = enabled_payment_methods()
    form.payment_method.choices = [(m.id, m.name) for m in payment]
    shipping = enabled_shipping_methods() if with_shipping else []
    if with_shipping:
        form.shipping_method.choices = [(m.id, m.name) for m in shipping]
    return payment, shipping


@bp.get("/")
def index():
    """The product list with variants, prices and what is left in stock."""
    return render("storefront/index.html", products=sellable_catalog(), add_form=AddToCartForm(),
                  cart_count=sum(_cart().values()))


@bp.post("/cart/add")
def add_to_cart():
    """Put an item in the cart (refused when not in stock)."""
    form = AddToCartForm()
    variant_id = _variant_id(form)
    if not form.validate_on_submit() or variant_id is None:
        flash(first_error(form) if form.errors else _("Choose an item."), "error")
        return redirect(url_for("storefront.index"))
    cart = _cart()
    if variant_id not in cart and len(cart) >= MAX_CART_LINES:
        flash(_("A cart holds at most %(max)s different items.", max=MAX_CART_LINES), "error")
        return redirect(url_for("storefront.cart"))
    try:
        variant = payments.check_can_add(variant_id, cart.get(variant_id, 0) + form.quantity.data)
    except DomainError as exc:
        flash(translate_error(exc), "error")
        return redirect(url_for("storefront.index"))
    cart[variant_id] = cart.get(variant_id, 0) + form.quantity.data
    _save_cart(cart)
    flash(_("Added %(quantity)s × %(item)s to your cart.", quantity=form.quantity.data,
            item=variant.display_name), "success")
    return redirect(url_for("storefront.index"))


@bp.post("/cart/set")
def set_quantity():
    """Change an item's quantity in the cart; 0 removes it."""
    form = SetQuantityForm()
    variant_id = _variant_id(form)
    cart = _cart()
    if not form.validate_on_submit() or variant_id is None:
        flash(first_error(form) if form.errors else _("Choose an item."), "error")
    elif form.quantity.data == 0:
        cart.pop(variant_id, None)
        _save_cart(cart)
        flash(_("Removed from your cart."), "success")
    else:
        try:
            payments.check_can_add(variant_id, form.quantity.data)
        except DomainError as exc:
            flash(translate_error(exc), "error")
        else:
            cart[variant_id] = form.quantity.data
            _save_cart(cart)
            flash(_("Cart updated."), "success")
    return redirect(url_for("storefront.cart"))


def _pay_context(method: PaymentMethod | None) -> dict:
    """What the checkout says about paying with ``method`` before the order exists.
    The deadline is the domain's own rule (orders.payment_deadline) as of now: the
    order placed this minute gets the same one."""
    deadline_at = within = None
    if method is not None and method.is_manual:
        now = utcnow()
        deadline_at, _reminder = payment_deadline(method, now)
        if deadline_at is not None:
            within = format_timedelta(deadline_at - now, threshold=0.9)
    return {"chosen_payment": method, "deadline_at": deadline_at, "deadline_within": within}


def _cart_page(form: CheckoutForm, *, error: str = "", status: int = 200,
               block: str = "content", live_error: str = ""):
    payment, shipping = _methods(form, with_shipping=True)
    if form.shipping_method.data is None and shipping:
        form.shipping_method.data = shipping[0].id
    # No payment method is chosen for the customer: the panel says where its details appear.
    chosen = next((m for m in payment if m.id == form.payment_method.data), None)
    quote = payments.quote_items(_cart(), form.shipping_method.data)
    html = render("storefront/cart.html", block, form=form, quote=quote, payment_methods=payment,
                  shipping_methods=shipping, set_form=SetQuantityForm(), error=error,
                  live_error=live_error, gateway=payments.get_gateway(),
                  currency=get_settings().currency, cart_count=sum(_cart().values()),
                  **_pay_context(chosen))
    return html, status


class _BadChoice(Exception):
    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message, self.status = message, status


def _pick(raw: str | None, methods: list, unavailable: str) -> int | None:
    """A method id from the query string: absent -> None (the default), not a number
    -> 400, not one of the enabled methods of that kind -> 404."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise _BadChoice(_("That choice is not valid."), 400)
    value = int(raw)
    if value not in {m.id for m in methods}:
        raise _BadChoice(unavailable, 404)
    return value


@bp.get("/cart/panel")
def checkout_panel():
    """The checkout's live part for the chosen methods: how to pay, the deadline, the
    card field for online methods, and the totals from the domain's quote. htmx
    swaps it in when a radio changes; without htmx it is the whole cart page."""
    form = CheckoutForm()
    payment, shipping = _methods(form, with_shipping=True)
    try:
        form.payment_method.data = _pick(request.args.get("payment_method"), payment,
                                         _("That payment method is not available."))
        form.shipping_method.data = _pick(request.args.get("shipping_method"), shipping,
                                          _("That shipping method is not available."))
    except _BadChoice as exc:
        form.payment_method.data = form.shipping_method.data = None
        return _cart_page(form, block="live", live_error=exc.message, status=exc.status)
    return _cart_page(form, block="live")


@bp.get("/cart")
def cart():
    """The cart and the checkout form."""
    return _cart_page(CheckoutForm())


@bp.post("/checkout")
def checkout():
    """Place the order: stock is held; manual methods wait for proof, online ones are charged."""
    form = CheckoutForm()
    # Kept referenced for the request: the session's identity map holds rows only while
    # something does, and placing the order reads these same two methods again.
    methods = _methods(form, with_shipping=True)  # noqa: F841
    items = _cart()
    if request.form.get("update"):  # no-JS: show the totals and how to pay for the choices
        return _cart_page(form)
    if not items:
        return _cart_page(form, error=_("Your cart is empty."), status=422)
    if not form.validate_on_submit():
        return _cart_page(form, error=first_error(form), status=422)
    try:
        order = payments.place_checkout(Checkout(
            customer=CustomerDetails(name=form.name.data, phone=form.phone.data or "",
                                     email=form.email.data or "", address=form.address.data or ""),
            items=list(items.items()), payment_method_id=form.payment_method.data,
            shipping_method_id=form.shipping_method.data, locale=current_locale(),
            note=form.note.data or ""),
            card_number=form.card_number.data or "")
    except DomainError as exc:  # the cart is kept: nothing was placed
        return _cart_page(form, error=translate_error(exc), status=422)
    schedule_deadline_jobs(order)
    session.pop(CART_KEY, None)
    flash(_("Thank you! Your order is placed. Keep this page's link to check on it."), "success")
    return redirect(url_for("storefront.order", token=order.public_token))


# ------------------------------------------------------------------ secret links


def _by_token(token: str, *, kind: str):
    order = get_order_by_token(token)
    if order is None:
        abort(404)
    if order.kind != kind:
        if kind == "draft":  # the link was already used: show the placed order
            abort(redirect(url_for("storefront.order", token=token)))
        abort(404)
    # Everything about an order (its page, refusals, flashes) reads in the language it
    # was placed in, or a draft's if the shop set one, unless the customer chose one.
    if order.kind == "placed" or order.locale:
        use_order_locale(order)
    return order


def _manual_method(order) -> PaymentMethod | None:
    method = db.session.get(PaymentMethod, order.payment_method_id) \
        if order.payment_method_id else None
    return method if method is not None and method.is_manual else None


def whatsapp_url(order) -> str:
    """A wa.me share of the order's secret link, worded in the order's language."""
    link = public_url("storefront.order", token=order.public_token)
    with force_locale(order_locale(order)):
        text = _("%(store)s: my order %(number)s. Its page (to check it and pay): %(link)s",
                 store=get_settings().name, number=order.number, link=link)
    return "https://wa.me/?text=" + url_quote(text, safe="")


def _order_page(order, *, form=None, error: str = "", status: int = 200):
    use_order_locale(order)  # also for the 413 handler, which skips _by_token
    # Loaded first and kept: payment_instructions then finds the same row in the
    # session instead of loading it again.
    pay_method = _manual_method(order)
    html = render("storefront/order.html", order=order, form=form or ProofForm(), error=error,
                  can_upload=can_upload_proof(order), messages=customer_messages(order),
                  instructions=payments.payment_instructions(order),
                  pay_method=pay_method, currency=get_settings().currency,
                  email_form=EmailLinkForm(formdata=None), resends_left=resend.resends_left(order),
                  max_resends=resend.MAX_RESENDS,
                  whatsapp_url=whatsapp_url(order))
    return html, status


@bp.get("/o/<token>")
def order(token: str):
    """The customer's order page: status, items, how to pay, proof upload."""
    return _order_page(_by_token(token, kind="placed"))


@bp.post("/o/<token>/proof")
def upload_proof(token: str):
    """Upload (or replace) the payment proof."""
    found = _by_token(token, kind="placed")
    form = ProofForm()
    if not form.validate_on_submit():
        return _order_page(found, form=form, error=first_error(form), status=422)
    try:
        proofs.submit_proof(found.id, form.proof.data.stream,
                            actor=Actor.customer(found.customer_name))
    except DomainError as exc:  # shown with the order as it is now (it may have expired)
        return _order_page(get_order(found.id), form=form, error=translate_error(exc), status=422)
    flash(_("Thank you! We received your payment proof; the shop will confirm it soon."),
          "success")
    return redirect(url_for("storefront.order", token=token))


@bp.post("/o/<token>/email-link")
def email_link(token: str):
    """Email me this link: the order's current email again, through the outbox, at most
    resend.MAX_RESENDS times per order (the same count as the desk's resend)."""
    found = _by_token(token, kind="placed")
    if not EmailLinkForm().validate_on_submit():
        return _order_page(found, error=_("The form expired; please try again."), status=400)
    try:
        sent = resend.resend_email(found.id, actor=Actor.customer(found.customer_name))
    except ResendLimit:
        return _order_page(get_order(found.id), status=429, error=_(
            "This link has already been emailed %(max)s times, the most we send for one order. "
            "Keep this page's address, or add it to WhatsApp.", max=resend.MAX_RESENDS))
    except DomainError as exc:
        return _order_page(get_order(found.id), error=translate_error(exc), status=422)
    left = resend.resends_left(sent)
    flash(ngettext("We emailed this page's link to %(email)s. You can ask %(num)d more time.",
                   "We emailed this page's link to %(email)s. You can ask %(num)d more times.",
                   left, email=sent.customer_email) if left else
          _("We emailed this page's link to %(email)s. That was the last time we can send it.",
            email=sent.customer_email), "success")
    return redirect(url_for("storefront.order", token=token))


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(exc: RequestEntityTooLarge):
    """A proof upload past the request limit (MAX_CONTENT_LENGTH) gets its order page
    with the same inline message as a file just over 10 MB, not a bare 413 page.

    Werkzeug refuses such a request from its Content-Length (or as soon as a
    chunked body passes the limit) when the form is first read, which is the
    CSRF check before any view runs; so the page is built without touching the
    request body again (``formdata=None``): nothing of it is read or stored."""
    token = (request.view_args or {}).get("token", "")
    order = get_order_by_token(token) if request.endpoint in (
        "storefront.upload_proof", "storefront.upload_balance_proof") else None
    if order is None or order.kind != "placed":
        handler = current_app.error_handler_spec.get(None, {}).get(413, {}).get(
            RequestEntityTooLarge)
        return handler(exc) if handler else exc  # the app's own 413 page
    return _order_page(order, form=ProofForm(formdata=None), error=_(proofs.TOO_LARGE, mb=proofs.MAX_MB), status=413)


@bp.get("/o/<token>/proof")
def proof_file(token: str):
    """The order's proof, for the holder of its link."""
    return proof_response(_by_token(token, kind="placed"))


@bp.get("/o/<token>/proof/thumbnail")
def proof_thumbnail(token: str):
    """A small preview of the proof image."""
    return proof_response(_by_token(token, kind="placed"), thumbnail=True)


def _draft_page(draft, form: PaymentChoiceForm, *, error: str = "", status: int = 200):
    payment, _ = _methods(form, with_shipping=False)
    html = render("storefront/draft.html", order=draft, form=form, payment_methods=payment,
                  error=error, gateway=payments.get_gateway())
    return html, status


@bp.get("/d/<token>")
def draft(token: str):
    """An order the shop prepared for the customer: choose how to pay and confirm."""
    return _draft_page(_by_token(token, kind="draft"), PaymentChoiceForm())


@bp.post("/d/<token>")
def checkout_draft(token: str):
    """Confirm the prepared order: it becomes a placed order, its stock held now."""
    found = _by_token(token, kind="draft")
    form = PaymentChoiceForm()
    _methods(form, with_shipping=False)
    if not form.validate_on_submit():
        return _draft_page(found, form, error=first_error(form), status=422)
    try:
        order = draft_actions.checkout_draft(found.id, form.payment_method.data,
                                             card_number=form.card_number.data or "",
                                             locale=current_locale())
    except DomainError as exc:
        return _draft_page(get_order(found.id), form, error=translate_error(exc),
                           status=422)
    schedule_deadline_jobs(order)
    use_order_locale(order)
    flash(_("Thank you! Your order is placed."), "success")
    return redirect(url_for("storefront.order", token=order.public_token))


# The balance due after a modification: its proof upload (blueprints/storefront/balance.py).
from blueprints.storefront import balance  # noqa: E402,F401
