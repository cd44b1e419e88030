/* caredesk agent inbox: live updates, presence, reply box. Plain JS on top of htmx; no build step. */
(function () {
  "use strict";

  // ---------------------------------------------------------------------------------------------------------------
  // Platform length rules: the same rules as caredesk/connectors/length.py (the server re-checks every reply).

  var URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"']+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|ly|app|dev|social)(?:\/[^\s<>"']*)?/gi;
  var MASTODON_MENTION_RE = /@([\p{L}\p{N}_]+)@[\p{L}\p{N}_.-]+[\p{L}\p{N}_]/gu;
  var X_LIGHT_RANGES = [[0, 4351], [8192, 8205], [8208, 8223], [8242, 8247]];
  var X_URL_LENGTH = 23;
  var COMBINING_RE = /[\p{Mn}\p{Me}]/u;

  function isJoiner(code) {
    return code === 0x200d || code === 0xfe0e || code === 0xfe0f || (code >= 0x1f3fb && code < 0x1f400);
  }
  function isRegional(code) { return code >= 0x1f1e6 && code <= 0x1f1ff; }

  function graphemes(text) {
    var clusters = [];
    var joined = false;
    for (var ch of text) {
      var code = ch.codePointAt(0);
      var last = clusters.length ? clusters[clusters.length - 1] : null;
      var lastChars = last === null ? [] : Array.from(last);
      if (last !== null && (joined || isJoiner(code) || COMBINING_RE.test(ch) ||
          (isRegional(code) && lastChars.length === 1 && isRegional(lastChars[0].codePointAt(0))))) {
        clusters[clusters.length - 1] = last + ch;
      } else {
        clusters.push(ch);
      }
      joined = code === 0x200d;
    }
    return clusters;
  }

  function xWeight(segment) {
    var total = 0;
    graphemes(segment).forEach(function (cluster) {
      var chars = Array.from(cluster);
      if (chars.length > 1 && chars.some(function (c) { var k = c.codePointAt(0); return k > 0xffff || isJoiner(k); })) {
        total += 2; // an emoji sequence counts as one emoji
        return;
      }
      chars.forEach(function (c) {
        var k = c.codePointAt(0);
        var light = X_LIGHT_RANGES.some(function (r) { return k >= r[0] && k <= r[1]; });
        total += light ? 1 : 2;
      });
    });
    return total;
  }

  function xWeightedLength(text) {
    text = text.normalize("NFC");
    var total = 0, last = 0, match;
    URL_RE.lastIndex = 0;
    while ((match = URL_RE.exec(text)) !== null) {
      total += xWeight(text.slice(last, match.index)) + X_URL_LENGTH;
      last = match.index + match[0].length;
    }
    return total + xWeight(text.slice(last));
  }

  function codePoints(text) { return Array.from(text).length; }

  function mastodonLength(text) {
    text = text.replace(MASTODON_MENTION_RE, function (_m, user) { return "@" + user; });
    text = text.replace(URL_RE, "x".repeat(X_URL_LENGTH));
    return codePoints(text);
  }

  /** {length, limit, unit, ok} for ``text`` on ``platform``; ``limit`` overrides the platform default. */
  function checkLength(platform, text, limit) {
    var result;
    if (platform === "x") {
      result = { length: xWeightedLength(text), limit: limit || 280, unit: "weighted characters" };
    } else if (platform === "mastodon") {
      result = { length: mastodonLength(text), limit: limit || 500, unit: "characters" };
    } else if (platform === "bluesky") {
      var lim = limit || 300;
      var count = graphemes(text).length;
      if (new TextEncoder().encode(text).length > 3000) count = Math.max(count, lim + 1);
      result = { length: count, limit: lim, unit: "graphemes" };
    } else if (platform === "reddit") {
      result = { length: codePoints(text), limit: limit || 10000, unit: "characters" };
    } else {
      result = { length: codePoints(text), limit: limit || 5000, unit: "characters" };
    }
    result.ok = result.length <= result.limit;
    return result;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Helpers

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }
  function openCase() { return document.getElementById("case"); }
  function openCaseId() { var c = openCase(); return c ? Number(c.dataset.caseId) : null; }
  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }
  function isTypingIn(container) {
    var el = document.activeElement;
    return !!(container && el && container.contains(el) && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Case list and pane refreshes

  var refreshList = debounce(function () {
    var list = document.getElementById("case-list");
    if (list && window.htmx) htmx.trigger(list, "refresh");
  }, 200);

  var liveRefreshPending = false;
  var refreshLive = debounce(function () {
    var live = document.getElementById("case-live");
    var pane = openCase();
    if (!live || !pane) return;
    if (isTypingIn(live)) { liveRefreshPending = true; return; } // an agent is choosing a label: wait for blur
    liveRefreshPending = false;
    htmx.ajax("GET", pane.dataset.liveUrl, { target: "#case-live", swap: "outerHTML" });
  }, 150);

  var refreshPresence = debounce(function () {
    var pane = openCase();
    if (pane && document.getElementById("presence")) {
      htmx.ajax("GET", pane.dataset.presenceUrl, { target: "#presence", swap: "outerHTML" });
    }
  }, 150);

  document.addEventListener("focusout", function () {
    if (liveRefreshPending) setTimeout(function () { if (liveRefreshPending) refreshLive(); }, 50);
  });

  function markOpenRow() {
    var id = openCaseId();
    document.querySelectorAll(".rows .row").forEach(function (row) {
      row.classList.toggle("is-open", id !== null && Number(row.dataset.caseId) === id);
    });
  }

  // Keep the thread's scroll position across refreshes; follow new messages if the agent was at the bottom.
  var threadScroll = null;
  // Posts whose labels (with the correction selects) the agent has open: a live refresh must not close them.
  var openLabels = [];
  document.addEventListener("htmx:beforeSwap", function (evt) {
    if (evt.detail.target && evt.detail.target.id === "case-live") {
      openLabels = Array.prototype.map.call(document.querySelectorAll("#thread .msg details.labels[open]"),
        function (d) { return d.closest(".msg").id; });
    }
    var thread = document.getElementById("thread");
    if (thread && evt.detail.target && (evt.detail.target.id === "case-live" || evt.detail.target.id === "reply-form" ||
        evt.detail.target.id === "note-form")) {
      threadScroll = { top: thread.scrollTop, atBottom: thread.scrollHeight - thread.scrollTop - thread.clientHeight < 40 };
    }
  });

  // ---------------------------------------------------------------------------------------------------------------
  // Live events (Server-Sent Events); the browser resumes with Last-Event-ID after a drop. Ids are stream
  // positions: the page names the one it was rendered at, every event carries its own.

  var source = null;
  var lastEventId = null;

  function setLive(state, label) {
    var el = document.getElementById("live");
    if (!el) return;
    el.className = "live live--" + state;
    el.querySelector(".live-label").textContent = label;
  }

  function connect() {
    var body = document.body;
    if (!body.dataset.streamUrl || !window.EventSource) return;
    var since = lastEventId !== null ? lastEventId : body.dataset.streamCursor || "";
    source = new EventSource(body.dataset.streamUrl + (since !== "" ? "?cursor=" + encodeURIComponent(since) : ""));
    source.addEventListener("open", function () { setLive("on", "live"); });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        setLive("off", "offline");
        setTimeout(connect, 5000); // refused (e.g. logged out elsewhere): try again later from the last id
      } else {
        setLive("connecting", "reconnecting");
      }
    });
    source.addEventListener("activity", function (evt) {
      if (evt.lastEventId) lastEventId = evt.lastEventId;
      var data;
      try { data = JSON.parse(evt.data); } catch (e) { return; }
      refreshList();
      if (data.case !== null && data.case === openCaseId()) refreshLive();
    });
    // Too much was missed to replay (or the position was unknown): re-read the whole state, then go on from here.
    source.addEventListener("reload", function (evt) {
      if (evt.lastEventId) lastEventId = evt.lastEventId;
      refreshList();
      if (openCaseId() !== null) { refreshLive(); refreshPresence(); }
    });
    // The session ended (signed out, deactivated): stop, and let the page go to the login form.
    source.addEventListener("ended", function () {
      source.close();
      setLive("off", "signed out");
      window.location.reload();
    });
    source.addEventListener("presence", function (evt) {
      var data;
      try { data = JSON.parse(evt.data); } catch (e) { return; }
      if (data.case === openCaseId()) refreshPresence();
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Presence: heartbeats while a case is open, a beacon when leaving it.

  var presenceCaseId = null;
  var presenceTimer = null;

  function replyMode() {
    var text = document.getElementById("reply-text");
    if (!text) return "viewing";
    return document.activeElement === text || text.value.trim() !== "" ? "replying" : "viewing";
  }

  function heartbeat() {
    var pane = openCase();
    if (!pane) return;
    var body = new URLSearchParams({ mode: replyMode() });
    fetch(pane.dataset.presenceUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
    }).catch(function () { /* the next beat retries */ });
  }

  function leave(caseId, url) {
    if (!caseId || !url) return;
    var data = new FormData();
    data.append("csrfmiddlewaretoken", csrfToken());
    if (navigator.sendBeacon) navigator.sendBeacon(url, data);
  }

  var presenceLeaveUrl = null;
  function trackPresence() {
    var pane = openCase();
    var id = pane ? Number(pane.dataset.caseId) : null;
    if (id === presenceCaseId) return;
    if (presenceCaseId !== null) leave(presenceCaseId, presenceLeaveUrl);
    clearInterval(presenceTimer);
    presenceCaseId = id;
    presenceLeaveUrl = pane ? pane.dataset.leaveUrl : null;
    if (id !== null) {
      heartbeat();
      presenceTimer = setInterval(heartbeat, 5000);
    }
  }

  window.addEventListener("pagehide", function () {
    if (presenceCaseId !== null) leave(presenceCaseId, presenceLeaveUrl);
    presenceCaseId = null;
  });
  window.addEventListener("pageshow", function (evt) { if (evt.persisted) trackPresence(); });

  // ---------------------------------------------------------------------------------------------------------------
  // Reply box

  function updateCounter() {
    var text = document.getElementById("reply-text");
    var form = document.getElementById("reply-form");
    if (!text || !form) return;
    var counter = form.querySelector("[data-counter]");
    var send = form.querySelector('button[data-action="send"]');
    var result = checkLength(text.dataset.platform || "", text.value.trim(), Number(text.dataset.limit) || 0);
    if (counter) {
      counter.textContent = result.length + " / " + result.limit;
      counter.classList.toggle("counter--over", !result.ok);
      counter.classList.toggle("counter--near", result.ok && result.limit - result.length <= 20);
    }
    if (send && !text.disabled) send.disabled = !result.ok || text.value.trim() === "";
  }

  var lastMode = "viewing";
  function modeChanged() {
    var mode = replyMode();
    if (mode !== lastMode) { lastMode = mode; heartbeat(); }
  }

  function insertAtCursor(textarea, snippet) {
    var start = textarea.selectionStart, end = textarea.selectionEnd, value = textarea.value;
    if (value.trim() === "") { textarea.value = snippet; start = 0; end = 0; }
    else {
      var before = value.slice(0, start), after = value.slice(end);
      var sep = before && !/\s$/.test(before) ? " " : "";
      textarea.value = before + sep + snippet + after;
      start = before.length + sep.length;
    }
    var caret = start + snippet.length;
    textarea.focus();
    textarea.setSelectionRange(caret, caret);
  }

  document.addEventListener("input", function (evt) {
    if (evt.target.id === "reply-text") { updateCounter(); modeChanged(); }
  });
  document.addEventListener("focusin", function (evt) { if (evt.target.id === "reply-text") modeChanged(); });
  document.addEventListener("focusout", function (evt) { if (evt.target.id === "reply-text") setTimeout(modeChanged, 0); });

  document.addEventListener("change", function (evt) {
    var target = evt.target;
    if (target.matches && target.matches("select[data-canned]")) {
      var texts = {};
      var data = document.getElementById("canned-replies");
      try { texts = JSON.parse(data ? data.textContent : "{}"); } catch (e) { texts = {}; }
      var snippet = texts[target.value];
      var textarea = document.getElementById("reply-text");
      if (snippet && textarea && !textarea.disabled) {
        insertAtCursor(textarea, snippet);
        updateCounter();
        modeChanged();
      }
      target.value = "";
    }
    if (target.form && target.form.id === "filters") {
      var params = new URLSearchParams();
      new FormData(target.form).forEach(function (value, key) { if (value !== "") params.append(key, value); });
      var query = params.toString();
      history.replaceState(history.state, "", location.pathname + (query ? "?" + query : ""));
    }
  });

  document.addEventListener("click", function (evt) {
    var tab = evt.target.closest && evt.target.closest(".composer-tabs .tab");
    if (tab) {
      var composer = document.getElementById("composer");
      composer.dataset.tab = tab.dataset.tab;
      var field = document.getElementById(tab.dataset.tab === "note" ? "note-text" : "reply-text");
      if (field) field.focus();
      return;
    }
    var replyTo = evt.target.closest && evt.target.closest("button.reply-to");
    if (replyTo) {
      var form = document.getElementById("reply-form");
      if (!form) return;
      form.querySelector('input[name="in_reply_to"]').value = replyTo.dataset.postId;
      var handle = form.querySelector("[data-reply-handle]");
      if (handle) handle.textContent = "@" + replyTo.dataset.handle + " (selected post)";
      var reset = form.querySelector('[data-action="reset-reply-to"]');
      if (reset) reset.hidden = false;
      document.getElementById("composer").dataset.tab = "reply";
      document.getElementById("reply-text").focus();
      return;
    }
    var resetBtn = evt.target.closest && evt.target.closest('[data-action="reset-reply-to"]');
    if (resetBtn) {
      var f = document.getElementById("reply-form");
      f.querySelector('input[name="in_reply_to"]').value = "";
      var h = f.querySelector("[data-reply-handle]");
      if (h) h.textContent = h.textContent.replace(" (selected post)", "");
      resetBtn.hidden = true;
    }
  });

  // Ctrl/Cmd+Enter sends the reply (or the note).
  document.addEventListener("keydown", function (evt) {
    if (evt.key === "Enter" && (evt.ctrlKey || evt.metaKey) && evt.target.form &&
        (evt.target.id === "reply-text" || evt.target.id === "note-text")) {
      evt.preventDefault();
      var button = evt.target.form.querySelector('button[type="submit"]');
      if (button && !button.disabled) button.click();
    }
  });

  // ---------------------------------------------------------------------------------------------------------------
  // After every swap: restore scroll, mark the open row, keep presence and counter in step.

  function scrollThread(toBottom) {
    var thread = document.getElementById("thread");
    if (!thread) return;
    if (toBottom) thread.scrollTop = thread.scrollHeight;
  }

  var shownCaseId = null;
  function afterSwap() {
    var id = openCaseId();
    if (id !== shownCaseId) {
      shownCaseId = id;
      threadScroll = null;
      scrollThread(true);
    } else if (threadScroll) {
      var thread = document.getElementById("thread");
      if (thread) thread.scrollTop = threadScroll.atBottom ? thread.scrollHeight : threadScroll.top;
      threadScroll = null;
    }
    openLabels.forEach(function (id) {
      var details = document.querySelector("#" + CSS.escape(id) + " details.labels");
      if (details) details.open = true;
    });
    openLabels = [];
    markOpenRow();
    trackPresence();
    updateCounter();
  }

  document.addEventListener("htmx:afterSettle", afterSwap);
  document.addEventListener("htmx:historyRestore", afterSwap);
  document.addEventListener("caredesk:case-changed", refreshList);
  document.addEventListener("htmx:responseError", function (evt) {
    var status = evt.detail.xhr ? evt.detail.xhr.status : "?";
    showToast("The server could not do that (HTTP " + status + "). Try again.");
  });
  document.addEventListener("htmx:sendError", function () { showToast("No connection to the server."); });

  function showToast(message) {
    var toast = document.getElementById("toast");
    if (!toast) {
      toast = document.createElement("div");
      toast.id = "toast";
      toast.className = "toast";
      toast.setAttribute("role", "status");
      document.body.appendChild(toast);
    }
    toast.textContent = message; // textContent: never HTML
    toast.classList.add("toast--show");
    clearTimeout(showToast.timer);
    showToast.timer = setTimeout(function () { toast.classList.remove("toast--show"); }, 5000);
  }

  window.caredesk = { checkLength: checkLength, graphemes: graphemes };

  function start() {
    shownCaseId = openCaseId();
    scrollThread(true);
    markOpenRow();
    trackPresence();
    updateCounter();
    connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
