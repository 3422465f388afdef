"""Owner-only settings: store information, payment and shipping methods, staff."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from blueprints.access import owner_only
from blueprints.auth.forms import CsrfOnlyForm
from blueprints.auth.routes import reload_page
from blueprints.i18n import translate_error
from blueprints.orders.forms import first_error
from blueprints.rendering import render
from blueprints.settings.forms import (
    LogoForm,
    PaymentMethodForm,
    ShippingMethodForm,
    StaffForm,
    StaffUpdateForm,
    StoreForm,
    ToggleForm,
)
from domain import accounts, sessions, store
from domain.errors import DomainError
from domain.money import cents_to_input

bp = Blueprint("settings", __name__, url_prefix="/settings")
owner_only(bp)  # settings are the owner's: staff get 403


def _outcome(form, action, success: str, endpoint: str):
    """Validate, call the domain, flash the result, and go back to the page."""
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
    return render("settings/store.html", block="settings", form=form, error=error,
                  section="store", logo_form=LogoForm(), remove_form=ToggleForm()), (
        422 if error else 200)


@bp.post("/logo")
def upload_logo():
    """Replace the store logo shown on invoices and the shop."""
    return _outcome(LogoForm(), lambda f: store.set_store_logo(f.logo.data.stream),
                    _l("Logo saved."), "settings.store_info")


@bp.post("/logo/delete")
def delete_logo():
    """Remove the store logo."""
    return _outcome(ToggleForm(), lambda f: store.remove_store_logo(), _l("Logo removed."),
                    "settings.store_info")


@bp.get("/payments")
def payments():
    """Payment methods: enable or disable, and custom manual methods."""
    methods = store.all_payment_methods()
    return render("settings/payments.html", block="settings", methods=methods, form=PaymentMethodForm(),
                  toggle_form=ToggleForm(), section="payments")


@bp.post("/payments")
def add_payment_method():
    """Add a custom manual payment method."""
    return _outcome(PaymentMethodForm(), lambda f: store.save_custom_payment_method(
        name=f.name.data, instructions=f.instructions.data, deadline_days=f.deadline_days.data),
        _l("Payment method added."), "settings.payments")


@bp.post("/payments/<int:method_id>")
def edit_payment_method(method_id: int):
    """Change a manual method's instructions, name (custom only) or deadline."""
    return _outcome(PaymentMethodForm(), lambda f: store.save_custom_payment_method(
        name=f.name.data, instructions=f.instructions.data, deadline_days=f.deadline_days.data,
        method_id=method_id), _l("Payment method saved."), "settings.payments")


@bp.post("/payments/<int:method_id>/toggle")
def toggle_payment_method(method_id: int):
    """Enable or disable a payment method at checkout."""
    return _outcome(ToggleForm(), lambda f: store.set_payment_method_enabled(
        method_id, f.enabled.data), _l("Payment method updated."), "settings.payments")


@bp.get("/shipping")
def shipping():
    """Shipping methods: delivery, pickup and logistics automation, with fees."""
    methods = store.all_shipping_methods()
    forms = {m.id: ShippingMethodForm(prefix=f"m{m.id}", name=m.name, kind=m.kind,
                                      fee=cents_to_input(m.fee_cents), enabled=m.enabled)
             for m in methods}
    return render("settings/shipping.html", block="settings", methods=methods, forms=forms,
                  form=ShippingMethodForm(), section="shipping")


@bp.post("/shipping")
def add_shipping_method():
    """Add a shipping method."""
    return _outcome(ShippingMethodForm(), lambda f: store.save_shipping_method(
        name=f.name.data, kind=f.kind.data, fee=f.fee.data, enabled=f.enabled.data),
        _l("Shipping method added."), "settings.shipping")


@bp.post("/shipping/<int:method_id>")
def edit_shipping_method(method_id: int):
    """Save a shipping method's name, kind, fee and availability."""
    return _outcome(ShippingMethodForm(prefix=f"m{method_id}"), lambda f: store.save_shipping_method(
        name=f.name.data, kind=f.kind.data, fee=f.fee.data, enabled=f.enabled.data,
        method_id=method_id), _l("Shipping method saved."), "settings.shipping")


@bp.get("/staff")
def staff():
    """Staff accounts and their roles."""
    users = accounts.list_users()
    forms = {u.id: StaffUpdateForm(prefix=f"u{u.id}", role=u.role, active=u.active)
             for u in users}
    return render("settings/staff.html", block="settings", users=users, forms=forms, form=StaffForm(),
                  section="staff", session_counts=sessions.live_session_counts(),
                  signout_form=CsrfOnlyForm())


@bp.post("/staff")
def add_staff():
    """Create a staff or owner account."""
    return _outcome(StaffForm(), lambda f: accounts.create_user(
        email=f.email.data, password=f.password.data, role=f.role.data, name=f.name.data),
        _l("Account created."), "settings.staff")


@bp.post("/staff/<int:user_id>")
def update_staff(user_id: int):
    """Change a member's role or whether they can sign in."""
    return _outcome(StaffUpdateForm(prefix=f"u{user_id}"), lambda f: accounts.update_user(
        user_id, role=f.role.data, active=f.active.data), _l("Account updated."), "settings.staff")


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
