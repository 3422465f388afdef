"""Message catalog upkeep: extract every message, merge it into the .po files, check them.

``flask --app app i18n update`` re-extracts the messages from the code and the
templates and merges them into translations/<locale>/LC_MESSAGES/messages.po
(new messages arrive untranslated, gone ones are dropped). ``make`` compiles
the .po files into .mo (never committed). tests/test_translations.py fails
while any message lacks a Traditional Chinese translation, is fuzzy, or the
catalog is stale.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from domain.i18n import EXTRACT_KEYWORDS, LOCALES

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
# Where people-facing text lives. bench/, tests/ and migrations/ speak to engineers.
METHOD_MAP = [
    ("app.py", "python"),
    ("domain/**.py", "python"),
    ("blueprints/**.py", "python"),
    ("jobs/**.py", "python"),
    ("templates/**.html", "jinja2"),
    ("templates/**.txt", "jinja2"),
]
OPTIONS_MAP = {"templates/**.html": {"trimmed": "true"}, "templates/**.txt": {"trimmed": "true"}}
TRANSLATED_LOCALES = [loc for loc in LOCALES if loc != "en"]  # English is the message id


def po_path(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"


def extract() -> Catalog:
    """Every message in the code and templates, as a template catalog."""
    catalog = Catalog(project="Shopdesk", version="1", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(ROOT), METHOD_MAP, OPTIONS_MAP, keywords=EXTRACT_KEYWORDS,
            comment_tags=("TRANSLATORS:",), strip_comment_tags=True):
        if not message or (isinstance(message, tuple) and not message[0]):
            continue
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments,
                    context=context)
    return catalog


def read_catalog(locale: str) -> Catalog:
    with po_path(locale).open("rb") as handle:
        return read_po(handle, locale=locale)


def write_catalog(catalog: Catalog, locale: str) -> None:
    catalog.fuzzy = False  # the header: a fuzzy catalog is skipped whole by pybabel compile
    path = po_path(locale)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = BytesIO()
    write_po(buffer, catalog, width=100, omit_header=False, sort_output=True,
             include_previous=False, ignore_obsolete=True)
    path.write_bytes(buffer.getvalue())


def update() -> dict[str, int]:
    """Merge the extracted messages into each locale's catalog; return untranslated counts."""
    template = extract()
    missing = {}
    for locale in TRANSLATED_LOCALES:
        if po_path(locale).exists():
            catalog = read_catalog(locale)
        else:
            catalog = Catalog(locale=locale, project="Shopdesk", version="1")
        # No fuzzy guesses: a new message is untranslated until a person writes it.
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        write_catalog(catalog, locale)
        missing[locale] = sum(1 for m in catalog if m.id and not _translated(m))
    return missing


def compile_all() -> None:
    for locale in TRANSLATED_LOCALES:
        catalog = read_catalog(locale)
        with (po_path(locale).with_suffix(".mo")).open("wb") as handle:
            write_mo(handle, catalog, use_fuzzy=False)


def _translated(message) -> bool:
    if isinstance(message.string, tuple | list):
        return all(message.string)
    return bool(message.string)


def problems(locale: str) -> list[str]:
    """What is wrong with one catalog against the code: untranslated, fuzzy, stale, unused."""
    template = extract()
    catalog = read_catalog(locale)
    found = []
    wanted = {m.id if not isinstance(m.id, tuple) else m.id[0]: m for m in template if m.id}
    have = {m.id if not isinstance(m.id, tuple) else m.id[0]: m for m in catalog if m.id}
    for key, message in wanted.items():
        entry = have.get(key)
        where = ", ".join(f"{f}:{n}" for f, n in message.locations[:2])
        if entry is None:
            found.append(f"missing from the catalog: {key!r} ({where})")
        elif entry.fuzzy:
            found.append(f"fuzzy: {key!r}")
        elif not _translated(entry):
            found.append(f"untranslated: {key!r} ({where})")
        elif isinstance(message.id, tuple) != isinstance(entry.id, tuple):
            found.append(f"plural form changed: {key!r}")
    for key in have.keys() - wanted.keys():
        found.append(f"stale (no longer in the code): {key!r}")
    return found
