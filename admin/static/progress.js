// Keeps each mailbox card's sync figures fresh while the page is open (the page is
// right without it). Reads GET /api/v1/mailboxes/{id}/sync-status every 3 s.
(function () {
  var labels = {
    reconnect_required: ["Needs reconnect", "attention"],
    stalled: ["Error", "attention"],
    live: ["Live", "live"],
    connecting: ["Connecting", "syncing"],
    listing_folders: ["Connecting", "syncing"]
  };
  function show(card, s) {
    var pct = s.total ? Math.min(100, Math.round(100 * s.scanned / s.total)) : 0;
    var badge = labels[s.phase] || ["Syncing " + pct + "%", "syncing"];
    var el = card.querySelector("[data-field=badge]");
    if (el) { el.textContent = badge[0]; el.className = "pill " + badge[1]; }
    el = card.querySelector("[data-field=summary]");
    if (el) {
      el.textContent = s.scanned + " of " + s.total + " scanned · " + s.matched +
        " with a contact · " + s.fetched + " fetched";
    }
    el = card.querySelector("[data-field=bar]");
    if (el) { el.value = pct; }
    el = card.querySelector("[data-field=missing]");
    if (el) { el.firstChild.textContent = s.missing + " "; }
    el = card.querySelector("[data-field=last_sync]");
    if (el && s.last_sync_at) { el.textContent = s.last_sync_at.slice(0, 16).replace("T", " "); }
  }
  function poll() {
    document.querySelectorAll("[data-status-url]").forEach(function (card) {
      fetch(card.getAttribute("data-status-url"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) { if (s) { show(card, s); } })
        .catch(function () {});
    });
  }
  if (document.querySelector("[data-status-url]")) { setInterval(poll, 3000); }
})();
