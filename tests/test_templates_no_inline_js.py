"""Every template keeps behaviour in static/js: the Content-Security-Policy allows
scripts only from the app's own files (script-src 'self', no 'unsafe-inline', no eval),
so inline script, event-handler attributes, javascript: URLs and htmx features that
evaluate code would silently stop working in the browser."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
ALL = sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html"))

JINJA_COMMENT = re.compile(r"{#.*?#}", re.S)
# Any tag's attribute list that holds an on<event>= attribute, even one a Jinja
# condition adds (<button {% if x %}onclick="..."{% endif %}>).
HANDLER_IN_TAG = re.compile(r"<[a-zA-Z][^<>]*?[\s\"'}](on[a-z]+)\s*=", re.S)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)


class _Attributes(HTMLParser):
    """Collects (tag, attribute, value) triples the way a browser would read them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.found.extend((tag, name.lower(), value or "") for name, value in attrs)

    handle_startendtag = handle_starttag


def source(name: str) -> str:
    return JINJA_COMMENT.sub("", (TEMPLATES / name).read_text(encoding="utf-8"))


def attributes(text: str) -> list[tuple[str, str, str]]:
    parser = _Attributes()
    parser.feed(text)
    parser.close()
    return parser.found


def problems(text: str) -> list[str]:
    found = []
    for attrs, body in SCRIPT.findall(text):
        if not re.search(r"\ssrc\s*=", attrs):
            found.append(f"<script{attrs}> without src")
        if body.strip():
            found.append(f"inline script: {body.strip()[:60]!r}")
    found += [f"event handler attribute {m}=" for m in HANDLER_IN_TAG.findall(text)]
    for tag, name, value in attributes(text):
        if re.fullmatch(r"on[a-z]+", name):
            found.append(f"<{tag} {name}=...>")
        elif name.startswith(("hx-on", "data-hx-on")):
            found.append(f"<{tag} {name}=...>: hx-on evaluates code")
        elif name in ("hx-vars", "data-hx-vars") or (
                name in ("hx-vals", "data-hx-vals") and value.lstrip().startswith(("js:", "javascript:"))):
            found.append(f"<{tag} {name}={value!r}>: evaluates code")
        elif name in ("hx-trigger", "data-hx-trigger") and "[" in value:
            found.append(f"<{tag} hx-trigger={value!r}>: event filters need eval")
    found += [f"javascript: URL near {m!r}" for m in re.findall(r".{0,30}javascript:", text, re.I)]
    return sorted(set(found))


@pytest.mark.parametrize("name", ALL)
def test_template_has_no_inline_behaviour(name):
    assert problems(source(name)) == [], name


def test_the_scan_sees_every_kind_of_inline_behaviour():
    bad = """
      <script>alert(1)</script>
      <script type="module"></script>
      <script src="/static/x.js">alert(2)</script>
      <button class="btn" onclick="go()">Go</button>
      <form {% if x %}onsubmit="return confirm('Sure?')"{% endif %} method="post">
      <input ONFOCUS='this.select()'>
      <a href="JavaScript:void(0)">x</a>
      <div hx-on:click="alert(3)" hx-on::after-request="x()"></div>
      <input hx-trigger="keyup[key=='Escape']">
      <div hx-vals='js:{a: 1}'></div>
    """
    found = "\n".join(problems(bad))
    for expected in ("inline script: 'alert(1)'", "<script type=\"module\"> without src",
                     "inline script: 'alert(2)'", "<button onclick=", "event handler attribute onsubmit=",
                     "<input onfocus=", "javascript: URL", "hx-on:click", "hx-on::after-request",
                     "event filters need eval", "<div hx-vals="):
        assert expected in found, expected
    fine = """<script src="{{ url_for('static', filename='js/app.js') }}" defer></script>
      <p>Sign on the line; click on = go.</p><input data-online="1" hx-trigger="input changed delay:300ms">"""
    assert problems(fine) == []


def test_htmx_runs_without_eval_and_without_injected_styles():
    base = source("base.html")
    match = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", base)
    assert match, "base.html has no htmx-config"
    config = json.loads(match.group(1))
    assert config["allowEval"] is False and config["includeIndicatorStyles"] is False
    assert any(rule.get("code") == "422" and rule.get("swap") for rule in config["responseHandling"])
    # htmx wires up swapped-in controls in its settle step; with the default 20 ms delay a
    # select changed in that window sent nothing (the draft builder's total stayed stale).
    assert config["defaultSettleDelay"] == 0
    for css in ("app.css", "shop.css"):
        text = (TEMPLATES.parent / "static" / "css" / css).read_text()
        assert ".htmx-request .htmx-indicator" in text, css
