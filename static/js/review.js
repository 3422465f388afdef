// Payments to confirm (issue 16): Confirm waits a few seconds with an Undo before it is
// sent, keys go through the queue, and after each answer the next proof is in focus.
// Without this file every button still works: Confirm posts at once.
(function () {
  var UNDO_SECONDS = 5;

  function cards() { return Array.prototype.slice.call(document.querySelectorAll("li.queue-item[data-number]")); }
  function current() {
    var el = document.activeElement;
    return el && el.closest ? el.closest("li.queue-item[data-number]") : null;
  }
  function focusCard(card) {
    if (!card) return;
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }
  function step(by) {
    var list = cards();
    if (!list.length) return;
    var at = list.indexOf(current());
    focusCard(list[at < 0 ? 0 : Math.min(list.length - 1, Math.max(0, at + by))]);
  }

  // Confirm: a countdown with Undo in place of the button; the POST goes when it ends.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("confirm-form") || form.dataset.sending) return;
    event.preventDefault();
    if (form.dataset.waiting) return;
    form.dataset.waiting = "1";
    var button = form.querySelector("button[type=submit]");
    var bar = document.createElement("div");
    bar.className = "undo-bar";
    bar.setAttribute("role", "status");
    var text = document.createElement("span");
    var undo = document.createElement("button");
    undo.type = "button";
    undo.className = "btn btn-small undo-button";
    undo.textContent = form.dataset.undoLabel || "Undo";
    bar.appendChild(text);
    bar.appendChild(undo);
    button.hidden = true;
    form.appendChild(bar);
    var left = UNDO_SECONDS;
    function show() { text.textContent = (form.dataset.undoText || "{s}").replace("{s}", left); }
    show();
    undo.focus();
    var timer = window.setInterval(function () {
      left -= 1;
      if (left > 0) { show(); return; }
      window.clearInterval(timer);
      form.dataset.sending = "1";
      window.htmx.trigger(form, "confirm-now");
    }, 1000);
    undo.addEventListener("click", function () {
      window.clearInterval(timer);
      bar.remove();
      button.hidden = false;
      delete form.dataset.waiting;
      button.focus();
    });
  });

  // After Confirm or Decline the card becomes its result (read out: role=status); the
  // merchant lands on the next proof, not at the top of the page.
  document.addEventListener("htmx:load", function (event) {
    var result = event.target.closest && event.target.closest(".queue-result");
    if (!result) return;
    var next = result.nextElementSibling;
    while (next && !next.matches("li.queue-item[data-number]")) next = next.nextElementSibling;
    if (next) focusCard(next);
  });

  // Keys, unless the merchant is typing: J / ↓ next, K / ↑ previous, C confirm,
  // D decline (opens the reason), Enter opens the proof full size.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable], dialog[open]")) return;
    if (!document.getElementById("queue")) return;
    var key = event.key;
    var card = current();
    if (key === "j" || key === "J" || key === "ArrowDown") { event.preventDefault(); step(1); return; }
    if (key === "k" || key === "K" || key === "ArrowUp") { event.preventDefault(); step(-1); return; }
    if (!card) return;
    if (key === "c" || key === "C") {
      var form = card.querySelector("form.confirm-form");
      if (form) { event.preventDefault(); form.requestSubmit(); }
    } else if (key === "d" || key === "D") {
      var details = card.querySelector("details.inline-form");
      if (details) {
        event.preventDefault();
        details.open = true;
        var reason = details.querySelector("textarea");
        if (reason) reason.focus();
      }
    } else if (key === "Enter" && target === card) {
      var zoom = card.querySelector(".proof-zoom, .queue-pdf");
      if (zoom) { event.preventDefault(); zoom.click(); }
    }
  });
})();
