"""Owner-only settings: store information, payment and shipping methods, staff."""

from __future__ import annotations

from babel.lists import format_list
from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from blueprints.access import owner_only
from blueprints.auth.forms import CsrfOnlyForm
from blueprints.auth.routes import reload_page
from blueprints.i18n import translate_error
from blueprints.orders.forms import first_error
from blueprints.rendering import is_htmx, render
from blueprints.settings.forms import (
    DETAILS_FORMS,
    METHOD_INPUTS,
    STAFF_INPUTS,
    STORE_INPUTS,
    LogoForm,
    PaymentMethodForm,
    ShippingMethodForm,
    StaffForm,
    StaffUpdateForm,
    StoreForm,
    ToggleForm,
    attach_refusal,
)
from domain import accounts, payment_details, sessions, store
from domain.errors import DomainError
from domain.money import cents_to_input

bp = Blueprint("settings", __name__, url_prefix="/settings")
owner_only(bp)  # settings are the owner's: staff get 403


@bp.app_template_global("payment_details_of")
def payment_details_of(method):
    """The details a customer copies to pay ``method`` (templates/storefront/_pay_details.html).
    App-wide, not only on settings pages: the store and the desk show the same details."""
    return payment_details.details(method)


def _outcome(form, action, success: str, endpoint: str):
    """Validate, call the domain, flash the result, and go back to the page (forms
    without typed input: a logo removal, a switch)."""
    if not form.validate_on_submit():
        flash(first_error(form), "error")
        return redirect(url_for(endpoint))
    try:
        action(form)
    except DomainError as exc:
        flash(translate_error(exc), "error")
        return redirect(url_for(endpoint))
    flash(str(success), "success")
    return redirect(url_for(endpoint))


def _submit(form, action, success: str, endpoint: str, *, refused, inputs: dict, default: str):
    """Validate ``form`` and call the domain. A refusal answers with the page itself
    (``refused(error)``, 422): the form holds what was typed and the reason stands
    beside its input; nothing is saved. Success flashes and goes back to the page."""
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:  # CSRFProtect refuses first; belt and braces
            abort(400)
        return refused(first_error(form))
    try:
        action(form)
    except DomainError as exc:
        attach_refusal(form, exc, inputs, default)
        return refused(translate_error(exc))
    flash(str(success), "success")
    return redirect(url_for(endpoint))


@bp.get("")
def index():
    """Settings start at the store information."""
    return redirect(url_for("settings.store_info"))


@bp.route("/store", methods=["GET", "POST"])
def store_info():
    """Store information shown on invoices, plus currency, time zone, plan, deadline."""
    settings = store.get_settings()
    form = StoreForm(obj=settings)
    error = ""
    if form.validate_on_submit():
        before = settings.language
        try:
            store.update_store_info(**{k: v for k, v in form.data.items() if k != "csrf_token"})
        except DomainError as exc:
            attach_refusal(form, exc, STORE_INPUTS, "name")
            error = translate_error(exc)
        else:
            changed = store.get_settings().language != before
            if changed:
                # A staff member without a language of their own now reads the new one.
                from flask_babel import refresh

                refresh()
            flash(_("Store information saved."), "success")
            target = url_for("settings.store_info")
            # A new language redraws the whole page, the top bar included.
            return reload_page(target) if changed else redirect(target)
    elif form.is_submitted():
        error = first_error(form)
    return _store_page(form, error=error)


def _store_page(form=None, *, logo_form=None, error: str = ""):
    """The store page; a refused form (store information or logo) comes back as typed,
    its reason beside the input (422)."""
    if form is None:
        form = StoreForm(formdata=None, obj=store.get_settings())
    return render("settings/store.html", block="settings", form=form, error=error,
                  section="store", logo_form=logo_form or LogoForm(formdata=None),
                  remove_form=ToggleForm(formdata=None)), (422 if error else 200)


@bp.post("/logo")
def upload_logo():
    """Replace the store logo shown on invoices and the shop."""
    form = LogoForm()
    return _submit(form, lambda f: store.set_store_logo(f.logo.data.stream), _l("Logo saved."),
                   "settings.store_info", refused=lambda error: _store_page(
                       logo_form=form, error=error), inputs={}, default="logo")


@bp.post("/logo/delete")
def delete_logo():
    """Remove the store logo."""
    return _outcome(ToggleForm(), lambda f: store.remove_store_logo(), _l("Logo removed."),
                    "settings.store_info")


def _missing_text(method) -> str:
    """"FPS ID, account name" in the reader's language (Babel joins the list)."""
    labels = [_(label) for label in payment_details.missing(method)]
    return format_list(labels, locale=str(get_locale() or "en")) if labels else ""


def _payments_page(posted=None, *, notice: str = "", status: int = 200, added=None,
                   edited=None, error: str = ""):
    """The payment methods page. A refused form comes back with what was typed and
    the errors next to the fields: ``posted`` is (method id, form) of a details form
    (htmx swaps the method list), ``edited`` the same for a custom method's
    instructions, ``added`` the new-method form."""
    methods = store.all_payment_methods()
    details_forms, edit_forms = {}, {}
    for m in methods:
        form_class = DETAILS_FORMS.get(m.code) if payment_details.has_typed_details(m) else None
        if form_class is None:
            if m.is_manual:
                edit_forms[m.id] = (edited[1] if edited and edited[0] == m.id else
                                    PaymentMethodForm(formdata=None, name=m.name,
                                                      instructions=m.instructions,
                                                      deadline_days=m.deadline_days or ""))
            continue
        if posted and posted[0] == m.id:
            details_forms[m.id] = posted[1]
        else:
            details_forms[m.id] = form_class(formdata=None, obj=m)
    open_id = posted[0] if posted else (edited[0] if edited else None)
    swap = posted is not None or (notice and not error)  # the details form's htmx swap
    return render("settings/payments.html", block=["methods"] if swap else "settings",
                  methods=methods, form=added or PaymentMethodForm(formdata=None),
                  toggle_form=ToggleForm(formdata=None), details_forms=details_forms,
                  edit_forms=edit_forms, missing={m.id: _missing_text(m) for m in methods},
                  notice=notice, error=error, open_id=open_id, section="payments"), status


@bp.get("/payments")
def payments():
    """Payment methods: typed details, enable or disable, and custom manual methods."""
    return _payments_page()


@bp.post("/payments/<int:method_id>/details")
def save_payment_details(method_id: int):
    """Save a built-in manual method's typed details (FPS ID, bank account, PayMe link)."""
    method = next((m for m in store.all_payment_methods() if m.id == method_id), None)
    if method is None or not payment_details.has_typed_details(method):
        abort(404)
    form = DETAILS_FORMS[method.code]()
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:  # CSRFProtect refuses first; belt and braces
            abort(400)
        return _payments_page((method_id, form), status=422)
    fields = {name: getattr(form, name).data or "" for name, _label in
              payment_details.fields_of(method)}
    try:
        payment_details.save_payment_details(
            method_id, instructions=form.instructions.data or "",
            deadline_days=form.deadline_days.data or "", **fields)
    except payment_details.DetailsRefused as exc:
        for name, error in exc.errors.items():
            field = getattr(form, name, None)
            if field is not None:
                field.errors = [*field.errors, translate_error(error)]
        return _payments_page((method_id, form), status=422)
    except DomainError as exc:
        flash(translate_error(exc), "error")
        return redirect(url_for("settings.payments"))
    done = _("%(method)s details saved.", method=_(method.name))
    if is_htmx():
        return _payments_page(notice=done)
    flash(done, "success")
    return redirect(url_for("settings.payments"))


@bp.post("/payments")
def add_payment_method():
    """Add a custom manual payment method."""
    form = PaymentMethodForm()
    return _submit(form, lambda f: store.save_custom_payment_method(
        name=f.name.data, instructions=f.instructions.data, deadline_days=f.deadline_days.data),
        _l("Payment method added."), "settings.payments",
        refused=lambda error: _payments_page(added=form, error=error, status=422),
        inputs=METHOD_INPUTS, default="name")


@bp.post("/payments/<int:method_id>")
def edit_payment_method(method_id: int):
    """Change a manual method's instructions, name (custom only) or deadline."""
    form = PaymentMethodForm()
    return _submit(form, lambda f: store.save_custom_payment_method(
        name=f.name.data, instructions=f.instructions.data, deadline_days=f.deadline_days.data,
        method_id=method_id), _l("Payment method saved."), "settings.payments",
        refused=lambda error: _payments_page(edited=(method_id, form), error=error, status=422),
        inputs=METHOD_INPUTS, default="name")


@bp.post("/payments/<int:method_id>/toggle")
def toggle_payment_method(method_id: int):
    """Enable or disable a payment method at checkout."""
    return _outcome(ToggleForm(), lambda f: store.set_payment_method_enabled(
        method_id, f.enabled.data), _l("Payment method updated."), "settings.payments")


def _shipping_page(*, added=None, edited=None, error: str = ""):
    """Shipping methods; a refused form (``added``, or ``edited`` = (method id, form))
    comes back as typed with the reason beside its input (422)."""
    methods = store.all_shipping_methods()
    forms = {m.id: (edited[1] if edited and edited[0] == m.id else ShippingMethodForm(
        formdata=None, prefix=f"m{m.id}", name=m.name, kind=m.kind,
        fee=cents_to_input(m.fee_cents), enabled=m.enabled)) for m in methods}
    return render("settings/shipping.html", block="settings", methods=methods, forms=forms,
                  form=added or ShippingMethodForm(formdata=None), section="shipping",
                  error=error), (422 if error else 200)


@bp.get("/shipping")
def shipping():
    """Shipping methods: delivery, pickup and logistics automation, with fees."""
    return _shipping_page()


@bp.post("/shipping")
def add_shipping_method():
    """Add a shipping method."""
    form = ShippingMethodForm()
    return _submit(form, lambda f: store.save_shipping_method(
        name=f.name.data, kind=f.kind.data, fee=f.fee.data, enabled=f.enabled.data),
        _l("Shipping method added."), "settings.shipping",
        refused=lambda error: _shipping_page(added=form, error=error),
        inputs=METHOD_INPUTS, default="fee")


@bp.post("/shipping/<int:method_id>")
def edit_shipping_method(method_id: int):
    """Save a shipping method's name, kind, fee and availability."""
    form = ShippingMethodForm(prefix=f"m{method_id}")
    return _submit(form, lambda f: store.save_shipping_method(
        name=f.name.data, kind=f.kind.data, fee=f.fee.data, enabled=f.enabled.data,
        method_id=method_id), _l("Shipping method saved."), "settings.shipping",
        refused=lambda error: _shipping_page(edited=(method_id, form), error=error),
        inputs=METHOD_INPUTS, default="fee")


def _staff_page(*, added=None, edited=None, error: str = ""):
    """Staff accounts; a refused form (``added``, or ``edited`` = (user id, form)) comes
    back as typed, the reason beside its input (422). Passwords are never sent back."""
    users = accounts.list_users()
    forms = {u.id: (edited[1] if edited and edited[0] == u.id else StaffUpdateForm(
        formdata=None, prefix=f"u{u.id}", role=u.role, active=u.active)) for u in users}
    return render("settings/staff.html", block="settings", users=users, forms=forms,
                  form=added or StaffForm(formdata=None), section="staff", error=error,
                  session_counts=sessions.live_session_counts(),
                  signout_form=CsrfOnlyForm(formdata=None)), (422 if error else 200)


@bp.get("/staff")
def staff():
    """Staff accounts and their roles."""
    return _staff_page()


@bp.post("/staff")
def add_staff():
    """Create a staff or owner account."""
    form = StaffForm()
    return _submit(form, lambda f: accounts.create_user(
        email=f.email.data, password=f.password.data, role=f.role.data, name=f.name.data),
        _l("Account created."), "settings.staff",
        refused=lambda error: _staff_page(added=form, error=error),
        inputs=STAFF_INPUTS, default="email")


@bp.post("/staff/<int:user_id>")
def update_staff(user_id: int):
    """Change a member's role or whether they can sign in."""
    if accounts.get_user(user_id) is None:
        abort(404)
    form = StaffUpdateForm(prefix=f"u{user_id}")
    return _submit(form, lambda f: accounts.update_user(
        user_id, role=f.role.data, active=f.active.data), _l("Account updated."),
        "settings.staff", refused=lambda error: _staff_page(edited=(user_id, form), error=error),
        inputs=STAFF_INPUTS, default="role")


@bp.post("/staff/<int:user_id>/sign-out")
def sign_out_staff(user_id: int):
    """Sign a person out on every device (their next click shows the login page)."""
    if not CsrfOnlyForm().validate_on_submit():
        flash(_("This form has expired. Reload the page and try again."), "error")
        return redirect(url_for("settings.staff"))
    user = accounts.get_user(user_id)
    if user is None:
        abort(404)
    count = sessions.end_all_sessions(user.id)
    flash(ngettext("%(name)s is signed out on %(num)d device.",
                   "%(name)s is signed out on %(num)d devices.", count, name=user.label),
          "success")
    return redirect(url_for("settings.staff"))
