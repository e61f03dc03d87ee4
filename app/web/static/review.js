// Refresh the queue list in place (no full reload): every 20 s and on demand.
// Served by the service itself; no CDN. Without JavaScript the page still works (reload it).
(function () {
  "use strict";
  var queue = document.getElementById("queue");
  if (!queue) return;
  var button = document.getElementById("refresh-button");
  var status = document.getElementById("refresh-status");
  var url = queue.getAttribute("data-refresh-url");
  var PERIOD_MS = 20000;
  var busy = false;

  function say(text) { if (status) status.textContent = text; }

  function refresh(manual) {
    // Do not pull the list out from under someone who is tabbing through it.
    if (busy || (!manual && queue.contains(document.activeElement))) return;
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" }, cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) {
          say("Your session has ended. Reload the page to sign in again.");
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (html === null) return;
        queue.innerHTML = html;  // server-rendered and escaped by the templates
        say("Updated " + new Date().toLocaleTimeString());
      })
      .catch(function () { say("Could not refresh; will try again."); })
      .then(function () { busy = false; });
  }

  if (button) {
    button.hidden = false;
    button.addEventListener("click", function () { refresh(true); });
  }
  window.setInterval(function () { if (!document.hidden) refresh(false); }, PERIOD_MS);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(false); });
})();
