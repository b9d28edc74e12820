// callsift console: one page, plain JavaScript, no build step.
// Every request carries the API key from sessionStorage; a 401 sends the user back to login.
"use strict";

(() => {
  const KEY = "callsift.key";
  const LANG = "callsift.lang";
  const POLL_MS = 2000;
  const PLOTS = ["calls_per_day", "share_over_time", "heatmap", "incident_types"];
  const LABELS = ["emergency", "non_emergency", "prank", "ghost"];

  const state = {
    key: sessionStorage.getItem(KEY),
    me: null,
    lang: localStorage.getItem(LANG) || ((navigator.language || "en").toLowerCase().startsWith("id") ? "id" : "en"),
    view: null,
    calls: new Map(), // call_id -> {json, li}
    timer: null,
    blobs: [],
    number: null,
  };

  const $ = (sel) => document.querySelector(sel);

  function t(key, vars) {
    const dict = window.I18N[state.lang] || window.I18N.en;
    let text = dict[key] ?? window.I18N.en[key] ?? key;
    // A count entry ({one, other}) takes the form Intl.PluralRules gives for vars.n.
    if (typeof text === "object") text = window.i18nPlural(state.lang, text, (vars || {}).n);
    for (const [k, v] of Object.entries(vars || {})) text = text.replaceAll(`{${k}}`, String(v));
    return text;
  }

  // Build elements without innerHTML: every value from the API is text, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  // replaceChildren without the nulls of optional parts (it would write them as "null").
  function fill(node, ...children) {
    node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
  }

  class AuthError extends Error {}

  async function api(path, options = {}) {
    const headers = Object.assign({ "X-API-Key": state.key || "" }, options.headers || {});
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(options.json);
    }
    const resp = await fetch(path, { method: options.method || "GET", headers, body: options.body });
    if (resp.status === 401) {
      logout(t("login_refused"));
      throw new AuthError("401");
    }
    if (!resp.ok) {
      let detail = resp.statusText;
      try { detail = (await resp.json()).detail || detail; } catch (_) { /* not JSON */ }
      const err = new Error(resp.status === 403 ? t("forbidden") : String(detail));
      err.status = resp.status;
      throw err;
    }
    return options.raw ? resp : resp.json();
  }

  async function blobUrl(path) {
    const resp = await api(path, { raw: true });
    const url = URL.createObjectURL(await resp.blob());
    state.blobs.push(url);
    return url;
  }

  function releaseBlobs() {
    for (const url of state.blobs) URL.revokeObjectURL(url);
    state.blobs = [];
  }

  // --- language --------------------------------------------------------------------

  function applyLang() {
    document.documentElement.lang = state.lang;
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    $("#lang").textContent = state.lang === "en" ? "Bahasa Indonesia" : "English";
    renderWho();
    if (window.CallsiftShortcuts) window.CallsiftShortcuts.relabel();
    if (state.view === "calls") for (const id of state.calls.keys()) renderCall(id);
    else if (state.view) show(state.view);
  }

  // --- login -----------------------------------------------------------------------

  function logout(message) {
    stopPolling();
    if (window.CallsiftEvents) window.CallsiftEvents.stop();
    releaseBlobs();
    sessionStorage.removeItem(KEY);
    state.key = null;
    state.me = null;
    state.calls.clear();
    $("#calls").replaceChildren();
    $("#nav").hidden = true;
    $("#logout").hidden = true;
    renderWho();
    showOnly("login");
    $("#login-error").textContent = message || "";
    $("#key").value = "";
    $("#key").focus();
  }

  async function login(key) {
    state.key = key;
    let me;
    try {
      const resp = await fetch("/v1/me", { headers: { "X-API-Key": key } });
      if (resp.status === 401) { logout(t("login_refused")); return; }
      if (!resp.ok) throw new Error(String(resp.status));
      me = await resp.json();
    } catch (_) {
      state.key = null;
      $("#login-error").textContent = t("login_unreachable");
      return;
    }
    sessionStorage.setItem(KEY, key);
    state.me = me;
    window.CallsiftFormat.setZone(me.timezone);
    $("#login-error").textContent = "";
    const can = me.roles_allowed || {};
    const allowed = { calls: true, queue: !!can.queue, dashboard: !!can.dashboard, audit: !!can.audit, model: !!can.model, report: !!can.report };
    for (const b of document.querySelectorAll("#nav button")) b.hidden = !allowed[b.dataset.view];
    // Call-takers never get review controls in the page at all, not just hidden ones.
    if (!can.review) { const f = $("#review-form"); if (f) f.remove(); }
    $("#nav").hidden = false;
    $("#logout").hidden = false;
    renderWho();
    show(can.queue ? "queue" : "calls");
    startEvents();
  }

  function renderWho() {
    const me = state.me;
    $("#who").textContent = me ? `${me.name} · ${t("role_" + me.role)}` : "";
    $("#zone").textContent = me ? t("times_in", { zone: window.CallsiftFormat.zoneLabel() }) : "";
  }

  // --- views -----------------------------------------------------------------------

  function showOnly(name) {
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
    for (const b of document.querySelectorAll("#nav button")) {
      if (b.dataset.view === name) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    }
  }

  function show(name) {
    state.view = name;
    showOnly(name);
    stopPolling();
    const loaders = {
      calls: startPolling, queue: loadQueue, dashboard: loadDashboard, audit: loadAudit, model: loadModel,
      report: () => window.CallsiftReport.load(),
    };
    (loaders[name] || (() => {}))();
  }

  // --- call-taker view -------------------------------------------------------------

  function startPolling() {
    stopPolling();
    const tick = async () => {
      try {
        await pollCalls();
        $("#calls-status").textContent = "";
      } catch (err) {
        if (err instanceof AuthError) return;
        $("#calls-status").textContent = t("calls_offline");
      }
      // Pushed updates (events.js) make the polling unnecessary while they arrive.
      if (state.view === "calls" && state.key && !eventsLive()) state.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  // --- pushed updates (events.js, GET /v1/events) ------------------------------------

  function eventsLive() {
    return !!(window.CallsiftEvents && window.CallsiftEvents.live());
  }

  let refreshTimer = null;
  let refreshedAt = 0;
  // A burst of events (a busy minute, the demo's replay, a reconnection) is one reload,
  // and reloads are spaced (the list 0.5 s, the ranked queue 2 s): flags and scores of
  // calls on screen are drawn from the event itself meanwhile.
  function refreshSoon(ms) {
    if (refreshTimer) return;
    const gap = state.view === "queue" ? 2000 : 500;
    const wait = Math.max(ms, refreshedAt + gap - Date.now());
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      refreshedAt = Date.now();
      try {
        if (state.view === "calls") await pollCalls();
        else if (state.view === "queue") await loadQueue();
      } catch (_) { /* the next event or poll shows it */ }
    }, wait);
  }

  function pushed(type, data) {
    if (state.view === "calls") {
      const entry = data.call_id ? state.calls.get(data.call_id) : null;
      if (entry && (type === "score" || type === "flag") && data.stage !== "pre_answer") {
        // Shown at once; the reload brings the number's history along.
        const { stage, flag, p_prank, p_ghost, reasons, model_version } = data;
        entry.call = Object.assign({}, entry.call, { score: { stage, flag, p_prank, p_ghost, reasons, model_version } });
        entry.json = "";
        renderCall(data.call_id);
      }
      // A live stream's interim score is not stored yet: a reload would undo it.
      if (!data.live) refreshSoon(50);
    } else if (state.view === "queue" && type !== "call" && !data.live) {
      refreshSoon(200);
    }
  }

  function startEvents() {
    if (!window.CallsiftEvents) return;
    window.CallsiftEvents.start({
      key: () => state.key,
      onEvent: pushed,
      onReset: () => refreshSoon(0),
      onMode: (mode) => {
        if (mode === "polling" && state.view === "calls" && !state.timer) startPolling();
        if (mode === "live") refreshSoon(0); // what changed while connecting
      },
      onUnauthorized: () => logout(t("login_refused")),
    });
  }

  function stopPolling() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  async function pollCalls() {
    // The whole recent window each time: a call's score, outcome and the number's
    // history change after the call first appears, and the view must show that.
    const body = await api("/v1/calls?limit=50");
    const list = $("#calls");
    const items = Array.isArray(body) ? body : body.calls || [];
    let previous = null;
    for (const call of items) {
      const known = state.calls.get(call.call_id);
      const json = JSON.stringify(call);
      if (!known) {
        const li = el("li", { class: "call", id: `call-${call.call_id}`, "data-call-id": call.call_id });
        state.calls.set(call.call_id, { json, call, li });
        renderCall(call.call_id);
      } else if (known.json !== json) {
        known.json = json;
        known.call = call;
        renderCall(call.call_id);
      }
      const li = state.calls.get(call.call_id).li;
      // Keep the newest first without rebuilding (focus stays where it is).
      const want = previous ? previous.nextSibling : list.firstChild;
      if (want !== li) list.insertBefore(li, want);
      previous = li;
    }
    $("#calls-empty").hidden = state.calls.size > 0;
  }

  function currentScore(call) {
    return call.score || call.pre_score || null;
  }

  function flagKind(flag) {
    if (!flag || flag === "none") return { level: "none", target: null, icon: "✓" };
    const [level, target] = flag.split("_");
    return { level, target, icon: level === "likely" ? "⚠" : "!" };
  }

  function pct(p) {
    return typeof p === "number" ? `${Math.round(p * 100)}%` : "–";
  }

  // In the centre's time zone, named in the top bar (format.js).
  function when(iso) {
    return window.CallsiftFormat.dateTime(iso, state.lang);
  }

  function renderCall(id) {
    const entry = state.calls.get(id);
    if (!entry) return;
    const { call, li } = entry;
    const score = currentScore(call);
    const flag = score ? score.flag : null;
    const kind = flagKind(flag);
    const focusedAction = li.contains(document.activeElement) ? document.activeElement.dataset.label : null;
    li.className = `call flag-${kind.level}${kind.target ? " target-" + kind.target : ""}`;
    const flagText = score ? t(`flag_${flag}`) : t("flag_pending");
    const reasons = (score && score.reasons) || [];
    const recent = call.caller_recent;
    const history = call.caller_id === "" || !recent
      ? t("history_none")
      : t("history", {
        calls: t("calls_n", { n: recent.calls_7d }),
        pranks: t("pranks_n", { n: recent.pranks }),
        ghosts: t("ghosts_n", { n: recent.ghosts }),
      });
    const buttons = [];
    const can = (state.me && state.me.roles_allowed) || {};
    if (can.dispose) {
      for (const label of LABELS) {
        buttons.push(el("button", {
          type: "button",
          class: `dispo dispo-${label}`,
          "data-label": label,
          "aria-pressed": call.label === label ? "true" : "false",
          onclick: () => dispose(call.call_id, label),
          text: t(`lbl_${label}`),
        }));
      }
    }
    fill(li,
      el("div", { class: "call-head" },
        el("span", { class: "flag", role: "status" },
          el("span", { class: "flag-icon", "aria-hidden": "true", text: kind.icon }),
          el("span", { class: "flag-text", text: flagText })),
        el("span", { class: "caller", text: call.caller_id || t("withheld") }),
        el("time", { datetime: call.started_at, text: when(call.started_at) }),
        el("span", { class: "call-id", text: call.call_id }),
        call.caller_id ? el("button", {
          type: "button", class: "last-calls", "data-number": call.caller_id,
          onclick: () => window.CallsiftNumbers.open(call.caller_id), text: t("number_last_calls"),
        }) : null),
      el("div", { class: "probs" },
        el("span", { text: `prank ${pct(score && score.p_prank)}` }),
        el("span", { text: `ghost ${pct(score && score.p_ghost)}` }),
        score ? el("span", { class: "stage", text: t(`stage_${score.stage}`) }) : null),
      reasons.length
        ? el("ul", { class: "reasons" }, reasons.map((r) => el("li", { class: `reason ${r.effect}`, text: state.lang === "id" ? r.id : r.en })))
        : null,
      el("p", { class: "history", text: history }),
      buttons.length
        ? el("div", { class: "dispos", role: "group", "aria-label": t("disposition") },
          el("span", { class: "dispo-label", text: `${t("disposition")}:` }), buttons)
        : null,
      el("p", { class: "dispo-msg", role: "status", text: call.label ? t("dispo_done", { label: t(`lbl_${call.label}`) }) : "" }),
    );
    if (focusedAction) {
      const again = li.querySelector(`button[data-label="${focusedAction}"]`);
      if (again) again.focus();
    }
  }

  async function dispose(callId, label) {
    const entry = state.calls.get(callId);
    try {
      await api(`/v1/calls/${encodeURIComponent(callId)}/disposition`, { method: "POST", json: { label } });
      if (entry) {
        entry.call = Object.assign({}, entry.call, { label });
        entry.json = "";
        renderCall(callId);
      }
      await pollCalls();
    } catch (err) {
      if (err instanceof AuthError) return;
      if (entry) entry.li.querySelector(".dispo-msg").textContent = t("error", { msg: err.message });
    }
  }

  // --- supervisor view -------------------------------------------------------------

  async function loadQueue() {
    const body = await guard(api("/v1/numbers/flagged"));
    if (!body) return;
    const tbody = $("#queue tbody");
    tbody.replaceChildren(...body.numbers.map((n) => el("tr", {},
      el("td", { text: n.caller_id || t("withheld") }),
      el("td", { text: n.risk.toFixed(2) }),
      el("td", { text: n.calls }),
      el("td", { text: n.pranks }),
      el("td", { text: n.ghosts }),
      el("td", { text: t(`trend_${n.trend}`) }),
      el("td", { class: "review-cell", "data-action": n.review ? n.review.action : null, text: n.review ? t(`act_${n.review.action}`) : "–" }),
      el("td", { class: "row-actions" },
        el("button", { type: "button", "data-number": n.caller_id, onclick: () => openNumber(n.caller_id), text: t("open") }),
        " ",
        el("button", { type: "button", class: "last-calls", "data-number": n.caller_id, onclick: () => window.CallsiftNumbers.open(n.caller_id), text: t("number_last_calls") })),
    )));
    $("#queue-empty").hidden = body.numbers.length > 0;
    if (state.number) openNumber(state.number, { keepFocus: true });
  }

  async function openNumber(number, { keepFocus } = {}) {
    state.number = number;
    const body = await guard(api(`/v1/numbers/${encodeURIComponent(number)}`));
    if (!body) return;
    $("#timeline").hidden = false;
    $("#tl-title").textContent = number;
    const reviews = body.reviews || [];
    $("#tl-reviews").replaceChildren(...(reviews.length
      ? reviews.map((r) => el("li", { text: `${when(r.at || r.created_at)} · ${t("act_" + r.action)}${r.until ? " → " + when(r.until).slice(0, 10) : ""}${r.note ? " · " + r.note : ""}${r.actor ? " · " + r.actor : ""}` }))
      : [el("li", { text: t("tl_none") })]));
    $("#tl-calls").replaceChildren(...body.calls.map((c) => {
      const s = currentScore(c);
      const kind = flagKind(s && s.flag);
      const li = el("li", { class: `tl-call flag-${kind.level}${kind.target ? " target-" + kind.target : ""}` },
        el("span", { class: "flag" }, el("span", { "aria-hidden": "true", text: kind.icon + " " }), s ? t(`flag_${s.flag}`) : t("flag_pending")),
        ` ${when(c.started_at)} · ${c.call_id} · ${c.label ? t("lbl_" + c.label) : "–"}${c.history_weight === 0 ? " · (cleared)" : ""}`);
      if (c.has_audio) {
        const btn = el("button", { type: "button", class: "play", text: t("play") });
        btn.addEventListener("click", async () => {
          const url = await guard(blobUrl(`/v1/calls/${encodeURIComponent(c.call_id)}/recording`));
          if (!url) return;
          const audio = el("audio", { controls: true, src: url, "aria-label": `${t("play")} ${c.call_id}` });
          btn.replaceWith(audio);
          audio.play().catch(() => {});
        });
        li.append(" ", btn);
      } else {
        li.append(el("span", { class: "muted", text: ` · ${t("no_audio")}` }));
      }
      return li;
    }));
    if (!keepFocus) $("#tl-title").setAttribute("tabindex", "-1"), $("#tl-title").focus();
  }

  async function review(action) {
    const msg = $("#review-msg");
    const body = { action, note: $("#review-note").value || null };
    if (action === "watch") {
      const day = $("#review-until").value;
      if (!day) { msg.textContent = t("review_need_date"); return; }
      body.until = window.CallsiftFormat.endOfDay(day); // the day's end in the centre's zone
    }
    try {
      await api(`/v1/numbers/${encodeURIComponent(state.number)}/review`, { method: "POST", json: body });
      msg.textContent = t("review_done", { action: t(`act_${action}`) });
      $("#review-note").value = "";
      await loadQueue();
    } catch (err) {
      if (!(err instanceof AuthError)) msg.textContent = t("error", { msg: err.message });
    }
  }

  async function guard(promise) {
    try { return await promise; } catch (err) {
      if (!(err instanceof AuthError)) {
        const view = $(`#view-${state.view}`);
        let box = view.querySelector(".view-error");
        if (!box) { box = el("p", { class: "error view-error", role: "alert" }); view.prepend(box); }
        box.textContent = t("error", { msg: err.message });
      }
      return null;
    }
  }

  // --- dashboard, audit, model ----------------------------------------------------

  async function loadDashboard() {
    releaseBlobs();
    const box = $("#plots");
    box.replaceChildren(...PLOTS.map((name) => el("figure", { class: "plot", id: `plot-${name}` },
      el("figcaption", { text: t(`plot_${name}`) }))));
    await Promise.all(PLOTS.map(async (name) => {
      const url = await guard(blobUrl(`/v1/dashboard/plots/${name}.png`));
      if (url) $(`#plot-${name}`).prepend(el("img", { src: url, alt: t(`plot_${name}`) }));
    }));
  }

  async function loadAudit() {
    const body = await guard(api("/v1/audit?limit=100"));
    if (!body) return;
    const short = (v) => (v === null || v === undefined ? "" : JSON.stringify(v)).slice(0, 160);
    $("#audit tbody").replaceChildren(...body.entries.map((e) => el("tr", {},
      el("td", { text: when(e.at) }),
      el("td", { text: e.actor }),
      el("td", { text: e.action }),
      el("td", { text: `${e.target_type} ${e.target_id}` }),
      el("td", { class: "mono", text: `${short(e.before)} → ${short(e.after)}` }),
    )));
  }

  // Drift of the recent calls against the model's training reference (GET /v1/model).
  function renderDrift(drift) {
    const num = (v, digits = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
    const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
    const status = drift.status;
    const shifted = drift.groups.filter((g) => g.level === "shift").map((g) => t(`grp_${g.group}`))
      .concat(drift.scores.filter((s) => s.level === "shift").map((s) => s.score));
    const flagsMoved = drift.flag_rates.some((r) => r.shifted);
    const warning = status === "warning"
      ? [flagsMoved ? t("drift_warn_flags") : null, shifted.length ? t("drift_warn_groups", { groups: shifted.join(", ") }) : null]
        .filter(Boolean).join(" ")
      : null;
    const head = el("p", {},
      el("strong", { text: `${t("drift_status")}: ` }),
      el("span", { class: `drift-status drift-${status}`, text: t(`drift_${status}`) }),
      " ",
      el("span", { class: "muted", text: t("drift_window", { days: t("last_days_n", { n: drift.window_days }), calls: t("calls_n", { n: drift.calls }), min: drift.min_calls }) }));
    const groups = drift.groups.length ? el("table", { class: "table drift-groups" },
      el("caption", { text: t("drift_groups") }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: t("drift_group") }), el("th", { scope: "col", text: "PSI" }), el("th", { scope: "col", text: t("drift_level") }))),
      el("tbody", {},
        drift.groups.map((g) => el("tr", { class: g.level ? `level-${g.level}` : null },
          el("th", { scope: "row", text: t(`grp_${g.group}`), title: Object.keys(g.features).join(", ") }),
          el("td", { text: num(g.psi) }),
          el("td", { text: g.level ? t(`lvl_${g.level}`) : "–" }))),
        drift.scores.map((sc) => el("tr", { class: sc.level ? `level-${sc.level}` : null },
          el("th", { scope: "row", text: sc.score }),
          el("td", { text: num(sc.psi) }),
          el("td", { text: sc.level ? t(`lvl_${sc.level}`) : "–" }))))) : null;
    const rates = drift.flag_rates.length ? el("table", { class: "table drift-flags" },
      el("caption", { text: t("drift_flags") }),
      el("thead", {}, el("tr", {}, ["drift_flag", "drift_rate", "drift_reference", "drift_ratio", "drift_shifted"].map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {}, drift.flag_rates.map((r) => el("tr", { class: r.shifted ? "level-shift" : null },
        el("th", { scope: "row", text: t(`lbl_${r.flag}`) }),
        el("td", { text: pct(r.rate) }),
        el("td", { text: pct(r.reference) }),
        el("td", { text: r.ratio === null ? "–" : `${num(r.ratio)}×` }),
        el("td", { text: r.shifted ? t("yes") : t("no") }))))) : null;
    const days = drift.days.length ? el("table", { class: "table drift-days" },
      el("caption", { text: t("drift_days") }),
      el("thead", {}, el("tr", {}, ["drift_day", "col_calls", "lbl_prank", "lbl_ghost"].map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {}, drift.days.map((d) => el("tr", {},
        el("th", { scope: "row", text: d.day }), el("td", { text: d.calls }), el("td", { text: pct(d.prank) }), el("td", { text: pct(d.ghost) }))))) : null;
    fill($("#drift"),
      el("h3", { text: t("drift_title") }),
      head,
      warning ? el("p", { class: "drift-warning", role: "alert", text: warning }) : null,
      drift.detail ? el("p", { class: "muted", text: drift.detail }) : null,
      el("div", { class: "drift-tables" }, groups, rates, days),
    );
  }

  // The commands that close the loop: export, adapt, evaluate, promote (docs/model.md).
  // The serving model as `callsift adapt --base` names it (the registry's default name).
  function baseOf(source) {
    if (source && source.startsWith("registry:")) {
      const ref = source.slice(9);
      if (ref.startsWith("models:/")) return ref;
      return /^[0-9]+$/.test(ref) ? `models:/callsift/${ref}` : `models:/callsift@${ref}`;
    }
    if (source && source.startsWith("dir:")) return source.slice(4);
    return "models/default";
  }

  function renderLoop(version, source) {
    const origin = window.location.origin;
    const key = `-H "X-API-Key: $CALLSIFT_KEY"`;
    const steps = [
      ["loop_export", `date -u +%Y-%m-%dT%H:%M:%SZ > recordings/labelled.time\ncurl -fsS ${key} "${origin}/v1/export/labelled" -o recordings/labelled.csv\ncallsift validate recordings/labelled.csv`],
      ["loop_adapt", `callsift adapt recordings/labelled.csv --out models/centre --base ${baseOf(source)}`],
      ["loop_evaluate", `curl -fsS ${key} "${origin}/v1/export/labelled?since=$(cat recordings/labelled.time)" -o recordings/since.csv\ncallsift evaluate recordings/since.csv --out eval/centre --model models/centre`],
      ["loop_promote", `callsift promote recordings/since.csv\ncurl -fsS -X POST ${key} -H "Content-Type: application/json" -d '{"registry_ref": "champion"}' "${origin}/v1/model/reload"`],
    ];
    $("#loop").replaceChildren(
      el("h3", { text: t("loop_title") }),
      el("p", { class: "muted", text: t("loop_hint", { version }) }),
      el("ol", { class: "loop" }, steps.map(([step, cmd]) => {
        const msg = el("span", { class: "copied", role: "status" });
        const copy = el("button", {
          type: "button", class: "copy", text: t("copy"), "aria-label": `${t("copy")}: ${t(step)}`,
          onclick: async () => {
            try { await navigator.clipboard.writeText(cmd); msg.textContent = t("copied"); } catch (_) { msg.textContent = t("copy_failed"); }
          },
        });
        return el("li", {}, el("p", { text: t(step) }), el("pre", { class: "cmd" }, el("code", { text: cmd })), copy, msg);
      })),
    );
  }

  async function loadModel() {
    const [body, info] = await Promise.all([guard(api("/v1/model/report")), guard(api("/v1/model"))]);
    if (info && info.drift) renderDrift(info.drift);
    if (!body) return;
    renderLoop(body.version, info ? info.source : null);
    releaseBlobs();
    const card = body.card || {};
    const metrics = card.metrics || {};
    const rows = [
      [t("model_version"), body.version],
      [t("model_created"), when(card.created_at)],
      [t("model_data"), card.training_data ? card.training_data.labelled_calls : "–"],
    ];
    const flat = [];
    const walk = (prefix, obj) => {
      for (const [k, v] of Object.entries(obj || {})) {
        if (v && typeof v === "object" && !Array.isArray(v)) { if (flat.length < 40) walk(`${prefix}${k}.`, v); }
        else if (typeof v === "number") flat.push([`${prefix}${k}`, Number.isInteger(v) ? v : v.toFixed(3)]);
      }
    };
    walk("", metrics);
    fill($("#model"),
      el("dl", { class: "kv" }, rows.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
      flat.length ? el("h3", { text: t("model_metrics") }) : null,
      flat.length ? el("table", { class: "table metrics" }, el("tbody", {}, flat.slice(0, 40).map(([k, v]) => el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v }))))) : null,
      body.report_md ? el("details", {}, el("summary", { text: t("model_report") }), el("pre", { class: "report", text: body.report_md })) : null,
    );
    const plots = $("#model-plots");
    plots.replaceChildren(...body.plots.map((name) => el("figure", { class: "plot", id: `mplot-${name.replace(/\W/g, "_")}` }, el("figcaption", { text: name }))));
    await Promise.all(body.plots.map(async (name) => {
      const file = name.endsWith(".png") ? name : `${name}.png`;
      const url = await guard(blobUrl(`/v1/model/report/${encodeURIComponent(file)}`));
      if (url) $(`#mplot-${name.replace(/\W/g, "_")}`).prepend(el("img", { src: url, alt: name }));
    }));
  }

  // --- wiring ----------------------------------------------------------------------

  // For the console's other scripts (numbers.js, report.js, shortcuts.js).
  window.callsift = { api, el, t, when, guard, show, openNumber, flagKind, currentScore, state };

  function init() {
    $("#login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("#key").value.trim();
      if (!key) { $("#login-error").textContent = t("login_empty"); return; }
      login(key);
    });
    $("#logout").addEventListener("click", () => logout(""));
    $("#lang").addEventListener("click", () => {
      state.lang = state.lang === "en" ? "id" : "en";
      localStorage.setItem(LANG, state.lang);
      applyLang();
    });
    for (const b of document.querySelectorAll("#nav button")) b.addEventListener("click", () => show(b.dataset.view));
    for (const b of document.querySelectorAll("#review-form button[data-action]")) {
      b.addEventListener("click", () => review(b.dataset.action));
    }
    applyLang();
    if (state.key) login(state.key);
    else logout("");
  }

  document.addEventListener("DOMContentLoaded", init);
})();
