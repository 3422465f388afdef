"""Every page.wait_for_function predicate in the browser tests is a function.

Playwright evaluates a bare expression such as "document.x === 1" by calling the page's own
eval() whenever the first check is false and it has to poll. Our pages send a Content-Security-
Policy without 'unsafe-eval', so that poll throws EvalError: the test then fails only when the
page is a little slow (it did, once, in CI). A function ("() => document.x === 1") is sent over
the DevTools protocol instead, which the policy does not govern.
"""
import ast
from pathlib import Path

TESTS = Path(__file__).parent


def _first_string(node):
    """The literal text of a call's first argument: a str, an f-string's head or a concatenation."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return node.values[0].value
    if isinstance(node, ast.BinOp):
        return _first_string(node.left)
    return None


def _is_function_source(text):
    head = text.lstrip()
    if head.startswith(("(", "function", "async ")):
        return True
    name, arrow, _ = head.partition("=>")
    return bool(arrow) and name.strip().isidentifier()


def test_every_wait_for_function_predicate_is_a_function():
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "wait_for_function" and node.args):
                text = _first_string(node.args[0])
                if text is not None and not _is_function_source(text):
                    offenders.append(f"{path.name}:{node.lineno}: {text[:60]!r}")
    assert not offenders, "wait_for_function needs '() => …' under our CSP:\n" + "\n".join(offenders)


def test_the_check_catches_a_bare_expression():
    assert not _is_function_source("document.body.innerText.includes('x')")
    assert not _is_function_source("[...document.images].every(i => i.complete)")
    assert _is_function_source("() => document.body")
    assert _is_function_source("img => img.complete")
    assert _is_function_source("(old) => old !== 1")
