// The draft builder: quantity steppers and the fee box's placeholder for the chosen
// method. Without this file the builder still works: quantities are typed, and
// Search / Add / Remove / Use submit the form and come back drawn by the server.
(function () {
  if (window.shopdeskDrafts) return; // included again by a swap
  window.shopdeskDrafts = true;
  document.documentElement.classList.add("drafts-js");

  document.addEventListener("click", function (event) {
    var button = event.target.closest(".draft-builder [data-step]");
    if (!button) return;
    var input = button.parentNode.querySelector("input[type=number]");
    if (!input) return;
    var value = parseInt(input.value, 10);
    if (isNaN(value)) value = 0;
    value = Math.max(parseInt(input.min || "1", 10), Math.min(parseInt(input.max || "999", 10),
      value + parseInt(button.dataset.step, 10)));
    input.value = String(value);
    // The running total listens for change (hx-trigger on .draft-live).
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // The fee box shows, greyed, the fee of the method now chosen (blank follows it).
  document.addEventListener("change", function (event) {
    var select = event.target.closest(".draft-builder select[data-fees]");
    if (!select) return;
    var fees = JSON.parse(select.dataset.fees || "{}");
    var fee = document.querySelector(".draft-builder input[name=shipping_fee]");
    var cents = fees[select.value];
    if (fee && cents !== undefined) fee.placeholder = (cents / 100).toFixed(2);
  });
})();
