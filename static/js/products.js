// Product editor: "Add variant" clones the row template (the server renders it, with
// "__i__" where the row's index goes); ticking "Remove" on a row not yet saved drops
// it, on a saved row it greys it out (the server removes it on save). Without script
// the spare blank row and the Remove boxes do the same job.
(function () {
  "use strict";

  function setup(root) {
    var table = root.querySelector("#variants-table");
    var add = root.querySelector("#add-variant");
    var template = root.querySelector("#variant-row-template");
    if (!table || !add || !template || add.dataset.ready) return;
    add.dataset.ready = "1";
    add.hidden = false;
    add.addEventListener("click", function () {
      var index = parseInt(table.dataset.nextIndex || "0", 10);
      table.dataset.nextIndex = String(index + 1);
      var html = template.innerHTML.replace(/__i__/g, String(index));
      var holder = document.createElement("tbody");
      holder.innerHTML = html;
      var row = holder.firstElementChild;
      root.querySelector("#variant-rows").appendChild(row);
      var first = row.querySelector("input[type=text]");
      if (first) first.focus();
    });
    table.addEventListener("change", function (event) {
      var box = event.target;
      if (!box.classList || !box.classList.contains("remove-variant")) return;
      var row = box.closest("tr");
      if (row.dataset.new === "true" && box.checked) {
        row.remove();
      } else {
        row.classList.toggle("removing", box.checked);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { setup(document); });
  // The editor block is swapped by htmx when a save is refused.
  document.addEventListener("htmx:afterSettle", function () { setup(document); });
})();
