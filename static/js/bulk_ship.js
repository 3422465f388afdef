// Bulk "Confirm shipment" (templates/orders/_bulk_ship.html): it ships what "Export
// selected" would export. app.js keeps "Select all N matching" as the value of
// #export-selected; this copies it into the button's own scope just before the browser
// reads it, and asks once before shipping (the customers are notified). Nothing ticked
// and not "all matching": the server says to select orders.
(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#bulk-ship");
    if (!button) return;
    var exportSelected = document.getElementById("export-selected");
    var everything = !!exportSelected && exportSelected.value === "matching";
    var ticked = document.querySelectorAll("input[name=ids][form=bulk-form]:checked").length;
    button.value = everything ? "matching" : "selected";
    if (!everything && !ticked) return;
    var text = (everything || ticked > 1) ? button.dataset.confirmOther : button.dataset.confirmOne;
    if (text && !window.confirm(text)) event.preventDefault();
  }, true);
})();
