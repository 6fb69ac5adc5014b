// Click a column header of a table.sortable to order its rows by that column (again: reverse).
// Rows that belong to a main row (class "detail", e.g. per-subject rows) move with it.
(function () {
  function cellValue(row, index) {
    const cell = row.children[index];
    if (!cell) return "";
    const raw = cell.getAttribute("data-sort") ?? cell.textContent.trim();
    const number = parseFloat(raw);
    return Number.isNaN(number) ? raw.toLowerCase() : number;
  }
  function sortTable(table, index, header) {
    const body = table.tBodies[0];
    const groups = [];
    for (const row of Array.from(body.rows)) {
      if (row.classList.contains("detail") && groups.length) groups[groups.length - 1].push(row);
      else groups.push([row]);
    }
    const ascending = header.getAttribute("aria-sort") !== "ascending";
    groups.sort(function (a, b) {
      const x = cellValue(a[0], index), y = cellValue(b[0], index);
      const empty = (v) => v === "" || v === "—";
      if (empty(x) !== empty(y)) return empty(x) ? 1 : -1;
      if (x < y) return ascending ? -1 : 1;
      if (x > y) return ascending ? 1 : -1;
      return 0;
    });
    for (const th of table.tHead.rows[0].cells) th.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    for (const group of groups) for (const row of group) body.appendChild(row);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.from(table.tHead.rows[0].cells).forEach(function (th, index) {
      th.addEventListener("click", function () { sortTable(table, index, th); });
    });
  });
  document.querySelectorAll("button.toggle").forEach(function (button) {
    button.addEventListener("click", function () {
      const key = button.getAttribute("data-target");
      document.querySelectorAll('tr.detail[data-of="' + key + '"]').forEach(function (row) { row.hidden = !row.hidden; });
      button.textContent = button.textContent === "+" ? "−" : "+";
    });
  });
})();
