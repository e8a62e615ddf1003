// Live updates: the server pushes an event when PostgreSQL announces a change
// (LISTEN/NOTIFY); the page then fetches itself and swaps its live parts,
// keeping open or closed whatever the reader opened or closed.
(function () {
  "use strict";
  var state = document.getElementById("live-state");
  var url = state && state.getAttribute("data-live");
  if (!url || !window.EventSource) { return; }
  var busy = false, again = false;

  function keepOpenState(oldPart, newPart) {
    var open = {};
    oldPart.querySelectorAll("details[data-path]").forEach(function (d) {
      open[d.getAttribute("data-path")] = d.open;
    });
    newPart.querySelectorAll("details[data-path]").forEach(function (d) {
      var path = d.getAttribute("data-path");
      if (path in open) { d.open = open[path]; }
    });
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-part]").forEach(function (part) {
          var name = part.getAttribute("data-live-part");
          var next = fresh.querySelector('[data-live-part="' + name + '"]');
          if (!next) { return; }
          keepOpenState(part, next);
          part.replaceWith(document.importNode(next, true));
        });
        // Forms show only while they apply (no signal form once it ended).
        var bar = document.querySelector(".actions-bar");
        var nextBar = fresh.querySelector(".actions-bar");
        if (bar && nextBar && bar.children.length !== nextBar.children.length &&
            !bar.contains(document.activeElement)) {
          bar.replaceWith(document.importNode(nextBar, true));
        }
        document.body.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource(url);
  // On (re)connecting, look once: what changed between rendering the page
  // and subscribing was announced to nobody.
  source.addEventListener("ready", function () { state.textContent = "live"; refresh(); });
  source.addEventListener("change", refresh);
  source.onerror = function () { state.textContent = "reconnecting…"; };
})();
