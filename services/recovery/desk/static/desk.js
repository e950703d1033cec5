// The desk's live parts: the SLA countdowns, and the queue refreshing itself.
"use strict";
(function () {
  function left(ms) {
    var late = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    var text = (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
    return late ? "overdue by " + text : text + " left";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (t) {
      var ms = Date.parse(t.getAttribute("datetime")) - now;
      t.textContent = left(ms);
      t.classList.toggle("late", ms < 0);
      t.classList.toggle("soon", ms >= 0 && ms < 3600 * 1000);
    });
  }
  function refresh() {
    var table = document.getElementById("queue");
    var url = table && table.getAttribute("data-refresh");
    if (!url || document.hidden) return;
    fetch(url, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString("<table>" + html + "</table>", "text/html");
      var rows = doc.getElementById("queue-rows"), old = document.getElementById("queue-rows");
      if (rows && old) { old.replaceWith(rows); tick(); }
    }).catch(function () {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    setInterval(refresh, 5000);
  });
})();
