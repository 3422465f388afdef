"""The orders list's rows as ready-made markup (blueprints/orders/rows.py, issue 14):
every value escaped, the relative times Babel's own, the tracking cell the same in the
list and on the order page."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from babel.dates import format_timedelta
from markupsafe import Markup

from blueprints.i18n import RelativeTime
from blueprints.orders.rows import tracking_view
from domain.actors import Actor
from domain.orders import confirm_payment, record_refund_note

STAFF = Actor("staff", 1, "Staff")
HOSTILE = '<script>alert("x")</script> & \'quote\''


@pytest.mark.parametrize("locale", ["en", "zh_Hant_HK"])
def test_relative_times_are_babels_own_words(locale):
    # Asked of Babel once per distinct answer: each answer must be what Babel says for
    # that very delta, around every unit's threshold and far from them.
    now = datetime(2026, 12, 3, 12, 0, tzinfo=ZoneInfo("UTC"))
    ago = RelativeTime(now, Locale.parse(locale))
    rng = random.Random(7)
    units = [1, 60, 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400]
    seconds = [0, 1, 29, 30, 31, 59.4, 59.5, 89.9]
    for per in units:
        for factor in (0.85, 0.8999, 0.9, 0.9001, 1, 1.49, 1.5, 1.51, 2.5, 6.3, 21.5, 21.6):
            seconds.append(per * factor)
    seconds += [rng.uniform(0, 800 * 86400) for _ in range(3000)]
    for s in seconds:
        for sign in (1, -1):
            delta = timedelta(seconds=sign * s)
            assert ago(now + delta) == format_timedelta(
                delta, add_direction=True, threshold=0.9, locale=locale), (s, sign)


def test_tracking_cell_escapes_and_says_why_it_is_locked():
    editable = tracking_view(HOSTILE, False, True, HOSTILE, "/orders/x?a=1&b=2", HOSTILE, "")
    assert isinstance(editable, Markup) and "<script>" not in editable
    assert 'hx-get="/orders/x?a=1&amp;b=2"' in editable
    assert editable.count("&lt;script&gt;") == 2  # the code and the tooltip
    empty = tracking_view("", False, True, "t", "/e", "Add tracking code", "(carrier)")
    assert '<span class="muted">Add tracking code</span>' in empty
    locked = tracking_view("", True, False, "Set by the carrier", "/e", "Add", "(carrier)")
    assert locked.startswith('<span class="tracking-view locked" title="Set by the carrier">')
    assert '<span class="muted">—</span>' in locked and "(carrier)" in locked
    assert "Add" not in locked and "hx-get" not in locked


def test_every_value_in_a_row_is_escaped(owner_client, make_order, make_variant):
    variant = make_variant(name=HOSTILE, variant=HOSTILE)
    order = make_order(items=[(variant.id, 2)], name=HOSTILE, phone="9123 4567")
    confirm_payment(order.id, actor=STAFF)
    record_refund_note(order.id, amount_cents=100, method="FPS", actor=STAFF)
    for htmx in (False, True):
        body = owner_client.get("/orders", htmx=htmx).get_data(as_text=True)
        row = re.search(rf'<tr class="order-row" id="row-{order.number}">.*?</tr>', body, re.S)
        assert row, body[:500]
        row = row.group(0)
        assert "<script>" not in row and "alert(&#34;x&#34;)" in row
        # the customer's name, and the product and variant names in the items summary
        assert row.count("&lt;script&gt;") == 3
        assert f'href="/orders/{order.number}"' in row and 'data-status="processing"' in row
        assert 'class="badge badge-grey" title="Refunded HK$1.00">Refunded</span>' in row
        assert f'<div class="tracking" id="tracking-list-{order.number}"><button' in row


def test_the_order_page_draws_the_same_tracking_cell(owner_client, make_order):
    order = make_order()
    confirm_payment(order.id, actor=STAFF)
    listed = owner_client.get("/orders").get_data(as_text=True)
    page = owner_client.get(f"/orders/{order.number}").get_data(as_text=True)
    cell = re.search(r'<button type="button" class="tracking-view editable"[^>]*>.*?</button>',
                     listed, re.S).group(0)
    on_page = re.search(r'<button type="button" class="tracking-view editable"[^>]*>.*?</button>',
                        page, re.S).group(0)
    # the same markup, but for where the editor opens (the list's row or the page's card)
    assert cell.replace("context=list", "context=page") == on_page


def test_a_page_reads_its_times_from_one_instant_in_its_own_language(app):
    # blueprints.i18n.ago and blueprints.rendering.local_time keep what they look up for
    # the request, keyed by the language: a switch mid-request (force_locale, an order's
    # own language) is followed, and nothing is kept outside a request.
    from flask_babel import force_locale

    from blueprints.i18n import ago, money
    from blueprints.rendering import local_time
    from domain.models import utcnow

    three_hours = utcnow() - timedelta(hours=3)
    with app.test_request_context("/orders"):
        assert ago(three_hours) == "3 hours ago"
        assert local_time(utcnow()).startswith("Today ")
        assert money(123456) == "HK$1,234.56"
        with force_locale("zh_Hant_HK"):
            assert ago(three_hours) == "3 小時前"
            assert local_time(utcnow()).startswith("今天 ")
        assert ago(three_hours) == "3 hours ago"
        # one teller and one clock per language for the whole request
        from flask import g

        kept = {key[:2] for key in g._i18n_kept if key[0] in ("ago", "clock")}
        assert kept == {("ago", "en"), ("ago", "zh_Hant_HK"), ("clock", "en"),
                        ("clock", "zh_Hant_HK")}
        teller = g._i18n_kept[("ago", "en")]
        ago(utcnow() - timedelta(days=2))
        assert g._i18n_kept[("ago", "en")] is teller
    with app.app_context(), force_locale("zh_Hant_HK"):  # a job: no request, made each time
        assert ago(three_hours) == "3 小時前"
        assert ago(utcnow() - timedelta(days=2)) == "2 日前"  # Babel's zh_Hant_HK


def test_template_gettext_says_what_jinjas_newstyle_gettext_says(app):
    # blueprints.i18n installs a one-call ``_`` and ``ngettext`` for templates; they must
    # give exactly what Jinja's own newstyle callables give: escaped arguments under
    # autoescape, plain text without it, "%%" read as a format, argument names free.
    from jinja2 import Environment

    from blueprints.i18n import _translations

    jinja = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    jinja.install_gettext_callables(
        lambda s: _translations().ugettext(s),
        lambda s, p, n: _translations().ungettext(s, p, n), newstyle=True)
    cases = ["{{ _('Orders') }}", "{{ _('Order %(number)s', number=x) }}",
             "{{ _('100%% sure') }}", "{{ _('To %(recipient)s', recipient=x) }}",
             "{{ ngettext('%(num)d order', '%(num)d orders', 3) }}",
             "{{ ngettext('%(num)s selected', '%(num)s selected', 1, num='{n}') }}",
             "{{ ngettext('%(num)d day', '%(num)d days', 1, string=x) }}",
             "{% autoescape false %}{{ _('Order %(number)s', number=x) }}{% endautoescape %}"]
    hostile = '<b title="x">&'
    with app.test_request_context("/orders"):
        from flask_babel import force_locale

        for locale in ("en", "zh_Hant_HK"):
            with force_locale(locale):
                for source in cases:
                    ours = app.jinja_env.from_string(source).render(x=hostile)
                    assert ours == jinja.from_string(source).render(x=hostile), (locale, source)
                    assert "<b" not in ours or "autoescape false" in source


def test_the_print_menu_is_kept_once_per_language(app, owner, owner_client, make_order):
    # The list's Print menu is rendered once per language and kept (kept_fragment): each
    # reader still gets it in their own language, and its script's hashed name is live.
    from domain.db import db

    make_order()
    for locale, word in (("en", "Print…"), ("zh_Hant_HK", "列印…"), ("en", "Print…")):
        owner.locale = locale
        db.session.commit()
        for htmx in (False, True):
            body = owner_client.get("/orders", htmx=htmx).get_data(as_text=True)
            menu = re.search(r'<summary class="btn btn-small" data-testid="print-menu">(.*?)'
                             r'</summary>', body)
            assert menu and menu.group(1) == word, (locale, htmx)
            assert re.search(r'<script src="/static/js/papers\.js\?v=[0-9a-f]{10}" defer>', body)
    kept = app.extensions["shopdesk.kept_fragments"]
    assert set(kept) == {("orders/_bulk_papers.html", "en"),
                         ("orders/_bulk_papers.html", "zh_Hant_HK")}


def test_the_rows_escape_exactly_as_markupsafe_does():
    from markupsafe import escape

    from blueprints.orders.rows import _esc

    samples = [HOSTILE, "", "plain", "陳大文 & 李小明", "<>&\"'", "&amp; already", "a\u3000b",
               "'; DROP TABLE orders; --", "\u202e\u0000\ufeff", "10% <off>", 12345]
    samples += ["".join(random.Random(seed).choice("<>&\"'ab陳 ") for _ in range(20))
                for seed in range(200)]
    for value in samples:
        assert _esc(value) == str(escape(value)), value
    assert _esc(Markup("<b>kept</b>")) == "<b>kept</b>"  # as escape() leaves Markup


def test_the_kept_language_name_follows_force_locale_and_refresh(app):
    # current_locale keeps the name beside Flask-Babel's locale object: a switch
    # (force_locale, an order's language) or a refresh() must still be seen at once.
    from flask import g
    from flask_babel import force_locale, refresh

    from blueprints.i18n import current_locale

    with app.test_request_context("/", headers={"Accept-Language": "zh-HK"}):
        first = current_locale()
        assert current_locale() == first
        assert g._flask_babel.shopdesk_locale_name[1] == first
        with force_locale("zh_Hant_HK"):
            assert current_locale() == "zh_Hant_HK"
        with force_locale("en"):
            assert current_locale() == "en"
        assert current_locale() == first
        g._flask_babel.babel_locale = None  # what refresh() leaves: looked up again
        refresh()
        assert current_locale() == first
