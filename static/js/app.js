// Small progressive enhancements; every page also works without this file.
(function () {
  // Rows open their order on click, unless the click was on a control inside the row.
  document.addEventListener("click", function (event) {
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, form, label, select, textarea")) return;
    if (window.getSelection && String(window.getSelection())) return; // selecting text
    window.location.href = row.dataset.href;
  });

  // <dialog> open/close buttons.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog) { dialog.showModal(); var first = dialog.querySelector("textarea, input"); if (first) first.focus(); }
      return;
    }
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  // A swapped-in inline editor gets focus with the cursor at the end.
  document.addEventListener("htmx:afterSwap", function (event) {
    var editor = document.querySelector(".tracking-form .tracking-input:not([data-focused])");
    if (editor) {
      editor.dataset.focused = "1";
      editor.focus();
      editor.setSelectionRange(editor.value.length, editor.value.length);
    }
  });
})();
