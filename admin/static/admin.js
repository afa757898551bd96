// Confirm dialogs, "select all" and waiting for an unlock to finish.
// Loaded from our own origin only (the pages' CSP allows no inline script).
"use strict";

document.addEventListener("click", function (e) {
  var b = e.target.closest("[data-confirm]");
  if (!b) return;
  var text = b.getAttribute("data-confirm");
  if (b.hasAttribute("data-require-selection")) {
    var n = document.querySelectorAll('input[name="ids"]:checked').length;
    if (n === 0) {
      window.alert(b.getAttribute("data-require-selection"));
      e.preventDefault();
      return;
    }
    text = text.replace("{n}", String(n));
  }
  if (!window.confirm(text)) e.preventDefault();
});

document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="ids"]').forEach(function (c) { c.checked = all.checked; });
    });
  }
  var pending = document.querySelector("[data-unlock-task]");
  if (!pending) return;
  var id = pending.getAttribute("data-unlock-task");
  var deadline = Date.now() + 60000;
  var done = function () {
    var u = new URL(window.location.href);
    u.searchParams.delete("unlock");
    window.location.replace(u.toString());
  };
  var poll = function () {
    fetch("/admin/unlocks/" + encodeURIComponent(id), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 404) return { state: "gone" };
        if (!r.ok) throw new Error("status " + r.status);
        return r.json();
      })
      .then(function (s) {
        if (s.state === "completed" || s.state === "archived" || s.state === "gone") return done();
        if (Date.now() > deadline) { pending.textContent = pending.getAttribute("data-slow"); return; }
        setTimeout(poll, 300);
      })
      .catch(function () {
        if (Date.now() > deadline) { pending.textContent = pending.getAttribute("data-slow"); return; }
        setTimeout(poll, 1000);
      });
  };
  poll();
});
