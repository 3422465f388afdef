// Copy buttons of the payment details (templates/storefront/_pay_details.html):
// <button data-copy="value"> puts the value on the clipboard and says "Copied"
// (the text comes from the page, in the reader's language: data-copied-text on
// the enclosing [data-copy-scope]) on the button and to screen readers through
// the scope's aria-live [data-copy-status]. Where the Clipboard API is missing
// or refused (http pages, old browsers) the value is selected in a temporary
// field and copied with execCommand; if even that fails, it stays selected so
// the customer can copy it by hand. Delegated, so swapped-in content works too.
(function () {
  "use strict";

  function fallbackCopy(text) {
    var field = document.createElement("textarea");
    field.value = text;
    field.setAttribute("readonly", "");
    field.style.position = "fixed";
    field.style.top = "0";
    field.style.left = "0";
    field.style.opacity = "0";
    document.body.appendChild(field);
    field.focus();
    field.select();
    field.setSelectionRange(0, text.length);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(field);
    return ok;
  }

  function selectValue(button) {
    // Last resort: select the shown value so a long-press / Ctrl+C copies it.
    var row = button.closest("dd");
    var value = row && row.querySelector(".pd-value");
    if (!value || !window.getSelection) return;
    var range = document.createRange();
    range.selectNodeContents(value);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function announce(button, ok) {
    var scope = button.closest("[data-copy-scope]");
    var text = (scope && scope.dataset.copiedText) || "Copied";
    if (ok) {
      if (!button.dataset.label) button.dataset.label = button.textContent;
      button.textContent = text;
      button.classList.add("is-copied");
      clearTimeout(button._copyTimer);
      button._copyTimer = setTimeout(function () {
        button.textContent = button.dataset.label;
        button.classList.remove("is-copied");
      }, 2000);
    } else {
      selectValue(button);
    }
    var status = scope && scope.querySelector("[data-copy-status]");
    if (status && ok) {
      // Emptied first so the same words are announced again on a second copy.
      status.textContent = "";
      setTimeout(function () { status.textContent = text; }, 50);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    event.preventDefault();
    var text = button.getAttribute("data-copy") || "";
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { announce(button, true); },
        function () { announce(button, fallbackCopy(text)); });
    } else {
      announce(button, fallbackCopy(text));
    }
  });
})();
