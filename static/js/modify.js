// Modify order: quantity steppers, the fee field's hint for the chosen method, and
// bringing the editor into view when it opens. Without this file the editor still
// works: quantities are typed, totals update on "Search"/Add/Remove and on save.
(function () {
  if (window.shopdeskModify) return; // included again by an htmx swap
  window.shopdeskModify = true;
  document.documentElement.classList.add("modify-js");

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".modify-editor [data-step]");
    if (!button) return;
    var input = button.parentNode.querySelector("input[name=qty]");
    if (!input) return;
    var value = parseInt(input.value, 10);
    if (isNaN(value)) value = 0;
    value = Math.max(parseInt(input.min || "0", 10), Math.min(parseInt(input.max || "999", 10),
      value + parseInt(button.dataset.step, 10)));
    input.value = String(value);
    // The live totals listen for change (hx-trigger on .modify-live).
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // The fee field's placeholder shows the fee of the method now chosen.
  document.addEventListener("change", function (event) {
    var select = event.target.closest(".modify-editor select[data-fees]");
    if (!select) return;
    var fees = JSON.parse(select.dataset.fees || "{}");
    var fee = document.querySelector(".modify-editor input[name=shipping_fee]");
    var cents = fees[select.value];
    if (fee && cents !== undefined) fee.placeholder = (cents / 100).toFixed(2);
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "modify-slot") {
      var editor = document.getElementById("modify-editor");
      if (editor) {
        editor.scrollIntoView({ behavior: "smooth", block: "start" });
        editor.focus({ preventScroll: true });
      }
    }
  });
})();
