// The desk's live parts: the SLA countdowns, and the queue refreshing itself.
"use strict";
(function () {
  function left(ms) {
    var late = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    var text = (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
    return late ? "overdue by " + text : text + " left";
  }
  // Business time left (data-left-s, as the server counted it on the person's calendar)
  // runs down while the calendar is open and holds while it is closed; the queue's refresh
  // brings a fresh count. Without a calendar: wall time to the datetime.
  function remaining(t, now) {
    var calendar = t.getAttribute("data-calendar");
    if (!calendar) return Date.parse(t.getAttribute("datetime")) - now;
    if (!t.hasAttribute("data-from")) t.setAttribute("data-from", String(now));
    var ms = parseFloat(t.getAttribute("data-left-s")) * 1000;
    return calendar === "open" ? ms - (now - parseFloat(t.getAttribute("data-from"))) : ms;
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (t) {
      var ms = remaining(t, now);
      var paused = t.getAttribute("data-calendar") === "closed";
      t.textContent = paused ? left(ms) + ", paused outside business hours" : left(ms);
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
