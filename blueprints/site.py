"""Site-wide pages that belong to no area: the styled error pages and the favicon."""

from __future__ import annotations

from flask import Flask, current_app, render_template, send_from_directory
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from domain.i18n import N_

# One complete sentence or two per page, so each can be translated whole.
# error.html adds the way back: the desk for staff, the shop on /shop pages.
# Message ids (N_), translated when the page is drawn.
ERROR_PAGES = {
    400: (N_("Request not understood"),
          N_("Shopdesk could not read that request. Go back and try again.")),
    403: (N_("Not allowed"),
          N_("Your account cannot open this page. Ask the shop owner if you need it.")),
    404: (N_("Not found"),
          N_("That page or order does not exist. If you followed a link, check that it was "
             "copied in full.")),
    405: (N_("Not allowed here"),
          N_("This address does not accept that kind of request. Go back and use the buttons "
             "on the page.")),
    414: (N_("Address too long"),
          N_("This address is too long for Shopdesk to read. Go back and try a shorter search.")),
}


def error_page(exc: HTTPException):
    """The styled page for a refused or unknown request, with its status code."""
    title, message = ERROR_PAGES[exc.code]
    return render_template("error.html", code=exc.code, title=_(title), message=_(message)), \
        exc.code


def favicon():
    """The site icon at the address browsers ask for on their own."""
    return send_from_directory(current_app.static_folder, "favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=7 * 86400)


def init_site(app: Flask) -> None:
    for code in ERROR_PAGES:
        app.register_error_handler(code, error_page)
    app.add_url_rule("/favicon.ico", "favicon", favicon)
