// Small progressive enhancements; every page also works without this file.
(function () {
  // Rows open their order on click, unless the click was on a control inside the row.
  document.addEventListener("click", function (event) {
    // The row's own order link says where (the list's rows carry no data-href of their own).
    var row = event.target.closest("tr[data-href], tr.order-row");
    if (!row || event.target.closest("a, button, input, form, label, select, textarea")) return;
    if (window.getSelection && String(window.getSelection())) return; // selecting text
    var link = row.dataset.href || (row.querySelector("a.order-link") || {}).href;
    if (link) window.location.href = link;
  });

  // A dialog whose form was refused comes back open, with what was typed.
  function openRefused(root) {
    var dialogs = (root.querySelectorAll ? root : document).querySelectorAll("dialog[data-open-on-load]");
    dialogs.forEach(function (d) { if (!d.open) d.showModal(); });
  }
  document.addEventListener("DOMContentLoaded", function () { openRefused(document); });
  document.addEventListener("htmx:load", function (event) { openRefused(event.target); });

  // <dialog> open/close buttons.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog) {
        dialog.showModal();  // modal: focus stays inside until it closes
        var first = dialog.querySelector("textarea, input");
        if (first) first.focus();
        // ...and then goes back to the button that opened it.
        dialog.addEventListener("close", function () { if (document.contains(opener)) opener.focus(); }, { once: true });
      }
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  // A swapped-in inline editor: put the cursor at the end. This runs on
  // htmx:load, after htmx has bound the form (focusing earlier, on afterSwap,
  // would let a quick Enter submit the form natively before htmx sees it).
  document.addEventListener("htmx:load", function (event) {
    var editor = event.target.querySelector && event.target.querySelector(".tracking-form .tracking-input");
    if (editor) {
      editor.focus();
      editor.setSelectionRange(editor.value.length, editor.value.length);
    }
  });

  // After Enter (saved) or Escape (cancelled) the editor is gone: keyboard focus goes
  // back to the cell it came from, and "Saved" is read out through the page's live region.
  var trackingCell = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    trackingCell = (target && target.classList && target.classList.contains("tracking") &&
                    target.contains(document.activeElement)) ? target.id : null;
  });
  document.addEventListener("htmx:load", function (event) {
    var cell = event.target.classList && event.target.classList.contains("tracking") ? event.target : null;
    if (!cell) return;
    var saved = cell.querySelector("[data-saved]");
    var live = document.getElementById("tracking-live");
    if (saved && live) { live.textContent = ""; live.textContent = saved.textContent; }
    if (cell.id === trackingCell && !cell.querySelector(".tracking-form")) {
      var view = cell.querySelector(".tracking-view");
      if (view) { if (!view.hasAttribute("tabindex") && view.tagName !== "BUTTON") view.setAttribute("tabindex", "-1"); view.focus(); }
    }
    trackingCell = null;
  });
})();

// Bulk selection: ticked rows, "select all on this page", "select all N matching".
// The scope travels as the value of the "Export selected" button (name=scope):
// "selected" sends the ticked ids, "matching" every order the query matches.
(function () {
  function exportButton() { return document.getElementById("export-selected"); }
  function matching() { var b = exportButton(); return !!b && b.value === "matching"; }
  function setMatching(on) { var b = exportButton(); if (b) b.value = on ? "matching" : "selected"; }
  function update() {
    var form = document.getElementById("bulk-form");
    if (!form) return;
    var boxes = document.querySelectorAll("input[name=ids][form=bulk-form]");
    var ticked = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
    var total = parseInt(form.dataset.total, 10);
    var all = document.getElementById("select-page");
    var matchingLink = document.getElementById("select-matching");
    var count = document.getElementById("bulk-count");
    var everything = matching();
    if (all) all.checked = boxes.length > 0 && ticked === boxes.length;
    // The texts come from the page, in the reader's language (data-text-*).
    var text = form.dataset;
    if (everything) {
      count.textContent = text.textAll;
      matchingLink.textContent = text.textClear;
    } else {
      var tickedText = ticked === 1 ? text.textTickedOne : text.textTickedOther;
      count.textContent = ticked ? tickedText.replace("{n}", ticked) : text.textNone;
      matchingLink.textContent = text.textMatch;
    }
    matchingLink.classList.toggle("hidden", !(everything || (ticked === boxes.length && ticked > 0 && total > ticked)));
    // With script, nothing ticked means nothing to export; without it the server says so.
    exportButton().disabled = !ticked && !everything;
    form.classList.toggle("has-selection", ticked > 0 || everything);
  }
  document.addEventListener("change", function (event) {
    if (event.target.id === "select-page") {
      document.querySelectorAll("input[name=ids][form=bulk-form]").forEach(function (b) { b.checked = event.target.checked; });
      if (!event.target.checked) setMatching(false);
      update();
    } else if (event.target.name === "ids") {
      if (!event.target.checked) setMatching(false);
      update();
    }
  });
  document.addEventListener("click", function (event) {
    if (event.target.id !== "select-matching") return;
    var on = !matching();
    setMatching(on);
    document.querySelectorAll("input[name=ids][form=bulk-form]").forEach(function (b) { b.checked = on; });
    update();
  });
  document.addEventListener("htmx:afterSettle", update);
  document.addEventListener("htmx:historyRestore", update);
  document.addEventListener("DOMContentLoaded", update);
})();

// ---- H2 (issue 7): behaviour that used htmx's eval-based trigger filters. ----
// The Content-Security-Policy forbids eval, so htmx runs with allowEval off and
// `hx-trigger="keyup[key=='Escape']"` no longer works; Escape in an inline editor
// marked data-escape-cancels fires its hx-trigger="escape-cancel" instead.
(function () {
  document.addEventListener("keyup", function (event) {
    if (event.key !== "Escape" || !window.htmx) return;
    var field = event.target.closest && event.target.closest("[data-escape-cancels]");
    if (field) window.htmx.trigger(field, "escape-cancel");
  });
})();
// ---- end H2 ----

// ---- H5 (issue 7): draft builder behaviour, formerly inline handlers. ----
// The Content-Security-Policy (script-src 'self') refuses onclick=/onsubmit=/onfocus=,
// so the templates only mark elements with data- attributes and these listeners act.
(function () {
  // data-select-on-focus: a read-only link box selects all of itself, ready to copy.
  document.addEventListener("focusin", function (event) {
    var field = event.target.closest && event.target.closest("[data-select-on-focus]");
    if (field && field.select) field.select();
  });

  // data-copy="<selector>": copy that field's value; the button then reads its
  // data-copied label (the text lives in the template, where it can be translated).
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.dataset.copy);
    if (!field) return;
    field.select();
    var done = function () { if (button.dataset.copied) button.textContent = button.dataset.copied; };
    var fallback = function () { try { if (document.execCommand("copy")) done(); } catch (e) { /* keep the selection: copy by hand */ } };
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(done, fallback);
    else fallback();
  });

  // <form data-confirm="question">: ask before submitting. Capture phase, so a
  // "Cancel" stops the submit before any other listener (htmx included) sees it.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.confirm) return;
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  // Review queue: a confirmed or declined card is replaced by its result in place.
  // Keyboard focus moves there (the button it was on is gone), and it scrolls into
  // view only if it is not already visible.
  document.addEventListener("htmx:load", function (event) {
    var result = event.target.closest && event.target.closest(".queue-result");
    if (!result) return;
    result.focus({ preventScroll: true });
    result.scrollIntoView({ block: "nearest" });
  });
})();
// ---- end H5 ----

// ---- H4 (issue 7): the orders list, Back/Forward and the back/forward cache. ----
// The list keeps no htmx history snapshot (hx-history="false"): on Back/Forward
// htmx fetches the whole page for the new address, and the server renders the
// form from the URL. Two ways the page could still disagree with its address:
(function () {
  // A page the browser kept whole in its back/forward cache comes back as it was
  // when the merchant left it: rows that may have changed since. Load it again.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && document.getElementById("order-filters")) window.location.reload();
  });
  // htmx could not fetch the page for the new address (server error, network):
  // the old entry's rows and form would stay under the new address. Load it
  // plainly instead, so the browser shows what that address gives.
  document.addEventListener("htmx:historyCacheMissLoadError", function () {
    if (document.getElementById("order-filters")) window.location.reload();
  });
})();
// ---- end H4 ----

// The order page's way back (issue 16): the orders list remembers its address (tab,
// search, filters, sort, page) in this tab's sessionStorage; an order page points
// "← Orders" there and asks the server for the previous and next order of that list.
(function () {
  var KEY = "shopdesk.ordersList";
  function remember() {
    if (location.pathname === "/orders" && document.getElementById("order-filters")) {
      try { sessionStorage.setItem(KEY, location.search); } catch (e) { /* storage off */ }
    }
  }
  document.addEventListener("DOMContentLoaded", remember);
  document.addEventListener("htmx:pushedIntoHistory", remember);
  document.addEventListener("htmx:replacedInHistory", remember);
  document.addEventListener("DOMContentLoaded", function () {
    var back = document.querySelector("[data-list-return]");
    if (!back) return;
    var search = null;
    try { search = sessionStorage.getItem(KEY); } catch (e) { return; }
    if (search === null) return;
    back.href = "/orders" + search;
    var steps = document.getElementById("order-steps");
    if (!steps) return;
    fetch(steps.dataset.neighboursUrl + search, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) { steps.innerHTML = html; });
  });
})();
