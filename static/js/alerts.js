// The desk's live alerts (blueprints/alerts/routes.py): the event stream or, without it,
// polling; toasts; the bell's panel; desktop notifications and the sound (both opt-in,
// remembered per browser in localStorage). The server renders everything shown; this
// file only connects, times out toasts and reads their data- attributes.
(function () {
  "use strict";
  var SOUND_KEY = "shopdesk.alertSound"; // "on" | absent (off by default)
  var NOTIFY_KEY = "shopdesk.desktopNotify"; // "off" when turned off here after allowing
  var HEARD_KEY = "shopdesk.alertHeard"; // newest entry id already announced (any tab)
  var TOAST_MS = 12000; // a toast stays this long, longer while pointed at or focused
  var MAX_TOASTS = 3;
  var MAX_SSE_ERRORS = 3; // failures in a row (no open in between) before polling instead

  var host = null;
  var source = null; // the EventSource the SSE extension made (htmx.createEventSource below)
  var sseErrors = 0;
  var mode = "off";

  function read(key) { try { return window.localStorage.getItem(key); } catch (e) { return null; } }
  function write(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key); else window.localStorage.setItem(key, value);
    } catch (e) { /* private mode: the choice lasts for this page only */ }
  }

  function stateValue(name) {
    var input = document.querySelector("#alerts-state input[name=" + name + "]");
    return input ? input.value : "";
  }

  // ---- connecting ----
  var STREAM_RETRY_MS = 120000; // while polling after failures, try the stream again this often
  var canStream = false; // EventSource and the SSE extension are both here (set on start)
  var retryTimer = null;

  function freshHost() {
    // The SSE extension keeps its state on the element: a new stream gets a new element.
    var fresh = document.createElement("div");
    fresh.id = host.id;
    fresh.hidden = true;
    Object.keys(host.dataset).forEach(function (key) { fresh.dataset[key] = host.dataset[key]; });
    host.parentNode.replaceChild(fresh, host);
    host = fresh;
  }

  function startStream() {
    if (!canStream) { startPolling(); return; }
    stopPolling();
    if (source) { source.close(); source = null; }
    if (host.hasAttribute("hx-ext")) freshHost();
    window.htmx.createEventSource = function (url) {
      source = new window.EventSource(url);
      return source;
    };
    // The stream starts from what this page has seen; on reconnects the browser sends
    // Last-Event-ID, which the server prefers when it is newer.
    var url = host.dataset.sseUrl + "?after=" + encodeURIComponent(stateValue("after")) +
      "&sig=" + encodeURIComponent(stateValue("sig"));
    host.setAttribute("hx-ext", "sse");
    host.setAttribute("hx-swap", "none");
    host.setAttribute("sse-swap", "alert");
    host.setAttribute("sse-connect", url);
    mode = "sse";
    sseErrors = 0;
    window.htmx.process(host);
  }

  function startPolling() {
    if (!window.htmx || mode === "poll") return;
    if (source) { source.close(); source = null; }
    host.removeAttribute("sse-connect"); // the extension's own reconnect attempts stop too
    var poller = document.createElement("div");
    poller.id = "alerts-poller";
    poller.hidden = true;
    poller.setAttribute("hx-get", host.dataset.pollUrl);
    poller.setAttribute("hx-trigger", "every " + (parseInt(host.dataset.pollSeconds, 10) || 3) + "s");
    poller.setAttribute("hx-include", "#alerts-state");
    poller.setAttribute("hx-swap", "none");
    document.body.appendChild(poller);
    mode = "poll";
    host.dataset.live = "poll";
    window.htmx.process(poller);
    // A stream that failed (a restart, a proxy hiccup) may work again later.
    if (canStream) retryTimer = window.setTimeout(startStream, STREAM_RETRY_MS);
  }

  function stopPolling() {
    window.clearTimeout(retryTimer);
    var poller = document.getElementById("alerts-poller");
    if (poller) poller.remove(); // htmx stops an "every" trigger whose element left the page
    mode = "off";
    host.dataset.live = "";
  }

  // data-live on the host says how this page hears news ("sse" once a stream is open,
  // "poll"), for people debugging a desk and for the browser tests.
  document.addEventListener("htmx:sseOpen", function () { sseErrors = 0; if (mode === "sse") host.dataset.live = "sse"; });
  document.addEventListener("htmx:sseError", function (event) {
    if (mode !== "sse" || !event.detail || event.detail.source !== source) return; // an old stream
    // A stream that ends after its minute also reports an error, then opens again.
    sseErrors += 1;
    host.dataset.live = "";
    if (sseErrors >= MAX_SSE_ERRORS) startPolling();
  });
  document.addEventListener("htmx:responseError", function (event) {
    // Signed out (or the session was revoked): stop asking; the next page load says so.
    var elt = event.detail && event.detail.elt;
    if (elt && elt.id === "alerts-poller" && event.detail.xhr && event.detail.xhr.status === 401) stopPolling();
  });

  // ---- toasts ----
  function dismiss(toast) {
    if (!toast || toast.classList.contains("leaving")) return;
    toast.classList.add("leaving");
    window.setTimeout(function () { toast.remove(); }, 220);
  }

  function schedule(toast, ms) {
    window.clearTimeout(toast._alertTimer);
    toast._alertTimer = window.setTimeout(function () {
      if (toast.matches(":hover") || toast.contains(document.activeElement)) schedule(toast, 3000);
      else dismiss(toast);
    }, ms);
  }

  function announce(toast) {
    var id = parseInt(toast.dataset.alertId, 10) || 0;
    var heard = parseInt(read(HEARD_KEY) || "0", 10) || 0;
    if (id <= heard) return; // another open tab announced it already
    write(HEARD_KEY, String(id));
    if (read(SOUND_KEY) === "on") playSound();
    if (notificationsOn() && !document.hasFocus()) {
      try {
        var note = new window.Notification(toast.dataset.title, {
          body: toast.dataset.body, tag: "shopdesk-alert-" + id, icon: host.dataset.iconUrl });
        note.onclick = function () { window.focus(); window.location.href = toast.dataset.url; note.close(); };
      } catch (e) { /* some browsers only notify from a service worker: the toast is enough */ }
    }
  }

  function newToast(toast) {
    var id = toast.dataset.alertId;
    var twins = document.querySelectorAll('#toasts .toast[data-alert-id="' + id + '"]');
    if (twins.length > 1) { toast.remove(); return; } // the stream and a poll both brought it
    var all = document.querySelectorAll("#toasts .toast:not(.leaving)");
    for (var i = 0; i < all.length - MAX_TOASTS; i++) dismiss(all[i]);
    schedule(toast, TOAST_MS);
    announce(toast);
    // Pages that list orders can refresh themselves on it: hx-trigger="desk-alert from:document".
    document.dispatchEvent(new CustomEvent("desk-alert", {
      detail: { id: parseInt(id, 10), kind: toast.dataset.kind, url: toast.dataset.url } }));
  }

  document.addEventListener("htmx:load", function (event) {
    var elt = event.target;
    if (elt && elt.classList && elt.classList.contains("toast") && elt.closest("#toasts")) newToast(elt);
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-toast-close]");
    if (close) dismiss(close.closest(".toast"));
  });

  // ---- sound ----
  function playSound() {
    try {
      var audio = new window.Audio(host.dataset.soundUrl);
      audio.volume = 0.8;
      var playing = audio.play();
      // Browsers refuse sound before the person has interacted with the page: stay quiet.
      if (playing && playing.catch) playing.catch(function () {});
    } catch (e) { /* no audio here */ }
  }

  // ---- desktop notifications: asked for from a button, never on page load ----
  function notificationsOn() {
    return "Notification" in window && window.Notification.permission === "granted" && read(NOTIFY_KEY) !== "off";
  }

  function notifyState() {
    if (!("Notification" in window)) return "unsupported";
    var permission = window.Notification.permission;
    if (permission === "denied") return "blocked";
    if (permission === "granted" && read(NOTIFY_KEY) !== "off") return "on";
    return "ask";
  }

  function refreshSettings() {
    var state = notifyState();
    document.querySelectorAll("[data-alert-settings]").forEach(function (box) {
      box.querySelectorAll("[data-notify-state]").forEach(function (line) {
        line.hidden = line.dataset.notifyState !== state;
      });
      box.querySelectorAll("[data-notify-enable]").forEach(function (button) { button.hidden = state !== "ask"; });
      box.querySelectorAll("[data-sound-toggle]").forEach(function (toggle) { toggle.checked = read(SOUND_KEY) === "on"; });
    });
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-notify-enable]")) {
      write(NOTIFY_KEY, null);
      if (window.Notification.permission === "default") {
        var asked = window.Notification.requestPermission(refreshSettings);
        if (asked && asked.then) asked.then(refreshSettings);
      }
      refreshSettings();
    } else if (event.target.closest && event.target.closest("[data-notify-disable]")) {
      write(NOTIFY_KEY, "off");
      refreshSettings();
    }
  });

  document.addEventListener("change", function (event) {
    if (!event.target.matches || !event.target.matches("[data-sound-toggle]")) return;
    write(SOUND_KEY, event.target.checked ? "on" : null);
    refreshSettings();
    if (event.target.checked) playSound(); // a sample, and this click lets the page play later
  });

  // ---- the bell's panel ----
  function panel() { return document.getElementById("bell-panel"); }
  function button() { return document.getElementById("bell-button"); }

  function setOpen(open) {
    var p = panel(), b = button();
    if (!p || !b) return;
    p.hidden = !open;
    b.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) {
      var list = document.getElementById("bell-list");
      if (list && window.htmx) window.htmx.trigger(list, "bell-open"); // first open: fetch the list
      refreshSettings(); // the permission may have changed in the browser's settings meanwhile
      var first = p.querySelector(".bell-entry, a, button");
      if (first) first.focus({ preventScroll: true });
    }
  }

  document.addEventListener("click", function (event) {
    var p = panel();
    if (!p) return;
    if (event.target.closest && event.target.closest("#bell-button")) {
      event.preventDefault(); // with script the bell opens the panel; without, it is a link
      setOpen(p.hidden);
    } else if (!p.hidden && !p.contains(event.target)) {
      setOpen(false);
    }
  });

  document.addEventListener("keydown", function (event) {
    var p = panel();
    if (event.key === "Escape" && p && !p.hidden) {
      setOpen(false);
      button().focus();
    }
  });

  // ---- start ----
  document.addEventListener("DOMContentLoaded", function () {
    host = document.getElementById("alerts-live");
    if (!host || !window.htmx) return;
    refreshSettings();
    canStream = typeof window.EventSource === "function" && window.htmx.createEventSource !== undefined;
    if (canStream) startStream(); else startPolling();
  });
  // Back/forward cache: an open stream keeps Chrome from keeping the page, so it is
  // closed when the page is left; a page that comes back whole reconnects from what
  // it had seen (or polls again).
  var modeWhenHidden = "off";
  window.addEventListener("pagehide", function () {
    if (!host) return;
    modeWhenHidden = mode;
    if (source) { source.close(); source = null; }
    if (mode === "poll") stopPolling();
  });
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted || !host) return;
    if (modeWhenHidden === "sse") startStream();
    else if (modeWhenHidden === "poll") startPolling();
  });
})();
