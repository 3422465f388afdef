// "Email me the file" (templates/orders/list.html) exports what "Export selected" would:
// the ticked orders, or every matching order when "Select all N matching" is on (app.js
// keeps that as the value of #export-selected) or when nothing is ticked. It sets its own
// scope just before htmx (or the browser) reads the button's value.
(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#export-email");
    if (!button) return;
    var exportSelected = document.getElementById("export-selected");
    var ticked = document.querySelectorAll("input[name=ids][form=bulk-form]:checked").length;
    var everything = exportSelected && exportSelected.value === "matching";
    button.value = everything || !ticked ? "matching" : "selected";
  }, true);
})();
