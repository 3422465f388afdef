// The bulk bar's "Print…" and "Create shipments" buttons (templates/orders/_bulk_papers.html)
// mean what "Export selected" means: the ticked orders, or every matching order while
// "Select all N matching" is on (app.js keeps that as the value of #export-selected).
// The scope is set just before htmx (or the browser) reads the button's value; the
// menu closes once a choice is made.
(function () {
  if (window.shopdeskPapersBulk) return;  // the list swaps this script in again
  window.shopdeskPapersBulk = true;
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-papers-scope]");
    if (!button) return;
    var exportSelected = document.getElementById("export-selected");
    button.value = exportSelected && exportSelected.value === "matching" ? "matching" : "selected";
    var menu = button.closest("details.papers-menu");
    if (menu) setTimeout(function () { menu.open = false; }, 0);
  }, true);
})();
