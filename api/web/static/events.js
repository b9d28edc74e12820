// Pushed updates (GET /v1/events, server-sent events) for the console.
// EventSource cannot send the API key, so each connection first fetches a one-use token
// (POST /v1/events/token, valid 60 s) and resumes after the last event id it saw. When
// events are blocked (a proxy, a firewall, an old server) the console falls back to
// polling after a few failed connections and tries events again later. The top bar says
// which: "live" or "polling".
"use strict";
window.CallsiftEvents = (() => {
  const TYPES = ["call", "score", "flag", "disposition", "review"];
  const MAX_FAILS = 3; // failed connections in a row before polling
  const RETRY_LIVE_MS = 30000; // while polling, try events again this often
  const LOG_MAX = 200;
  const TEXT = {
    en: { live: "live", polling: "polling", connecting: "connecting…", live_title: "Updates are pushed as they happen", polling_title: "Pushed updates are blocked here; the list is checked every 2 seconds" },
    id: { live: "langsung", polling: "memeriksa", connecting: "menghubungkan…", live_title: "Pembaruan dikirim saat terjadi", polling_title: "Pembaruan langsung terblokir; daftar diperiksa tiap 2 detik" },
  };

  let opts = null;
  let source = null;
  let lastId = null;
  let fails = 0;
  let mode = "off";
  let timer = null;
  let generation = 0; // a stop() makes callbacks of older connections no-ops
  const log = []; // {type, id, call_id, caller_id, flag, at}: what arrived, for tests

  function text(key) {
    const lang = (document.documentElement.lang || "en").startsWith("id") ? "id" : "en";
    return TEXT[lang][key] || TEXT.en[key] || key;
  }

  function render() {
    const node = document.getElementById("live");
    if (!node) return;
    node.hidden = mode === "off";
    node.dataset.mode = mode;
    node.textContent = mode === "off" ? "" : `● ${text(mode)}`;
    node.title = mode === "live" ? text("live_title") : mode === "polling" ? text("polling_title") : "";
  }

  function setMode(next) {
    if (mode === next) return;
    mode = next;
    render();
    if (opts && opts.onMode) opts.onMode(mode);
  }

  function close() {
    if (source) source.close();
    source = null;
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function failed(gen) {
    if (gen !== generation) return;
    close();
    fails += 1;
    if (fails >= MAX_FAILS) {
      setMode("polling");
      timer = setTimeout(() => connect(gen), RETRY_LIVE_MS);
    } else {
      if (mode !== "polling") setMode("connecting");
      timer = setTimeout(() => connect(gen), 500 * fails);
    }
  }

  async function connect(gen) {
    if (gen !== generation || !opts) return;
    let token;
    try {
      const resp = await fetch("/v1/events/token", { method: "POST", headers: { "X-API-Key": opts.key() || "" } });
      if (resp.status === 401) { if (opts.onUnauthorized) opts.onUnauthorized(); return; }
      if (!resp.ok) throw new Error(String(resp.status));
      token = (await resp.json()).token;
    } catch (_) {
      failed(gen);
      return;
    }
    if (gen !== generation) return;
    const query = new URLSearchParams({ token });
    if (lastId !== null) query.set("last_event_id", lastId);
    const es = new EventSource(`/v1/events?${query}`);
    source = es;
    es.onopen = () => { if (gen === generation) { fails = 0; setMode("live"); } };
    // The token is single-use: EventSource's own reconnection would be refused, so every
    // error closes it and a new token is fetched.
    es.onerror = () => failed(gen);
    const handle = (type) => (ev) => {
      if (gen !== generation) return;
      if (ev.lastEventId) lastId = ev.lastEventId;
      let data = {};
      try { data = JSON.parse(ev.data); } catch (_) { return; }
      log.push({ type, id: ev.lastEventId, call_id: data.call_id, caller_id: data.caller_id, flag: data.flag, at: Date.now() });
      if (log.length > LOG_MAX) log.shift();
      if (type === "reset") { if (opts.onReset) opts.onReset(data); }
      else if (type === "end") failed(gen); // the key was revoked: the token fetch says so
      else opts.onEvent(type, data);
    };
    for (const type of [...TYPES, "reset", "end"]) es.addEventListener(type, handle(type));
  }

  // The language button changes <html lang>: the indicator follows.
  new MutationObserver(render).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });

  return {
    /** Connect; opts: {key() -> API key, onEvent(type, data), onReset(), onMode(mode), onUnauthorized()}. */
    start(options) {
      this.stop();
      opts = options;
      fails = 0;
      setMode("connecting");
      connect(generation);
    },
    stop() {
      generation += 1;
      close();
      opts = null;
      lastId = null;
      setMode("off");
    },
    /** True while events arrive: the console does not need to poll. */
    live() { return mode === "live"; },
    mode() { return mode; },
    relabel: render,
    log,
  };
})();
