// A number's last calls with their outcomes, one click from a call row or the queue.
// Reads GET /v1/calls?caller_id=..., which every console role may read (calls are shared
// between desks); the full timeline with reviews and recordings stays for supervisors.
"use strict";
window.CallsiftNumbers = (() => {
  const LIMIT = 20;
  let dialog = null;
  let opener = null;

  function build() {
    const { el, t } = window.callsift;
    dialog = el("dialog", { id: "number-panel", class: "panel", "aria-labelledby": "np-title" },
      el("div", { class: "panel-head" },
        el("h3", { id: "np-title" }),
        el("button", { type: "button", class: "panel-close", "data-i18n": "panel_close", text: t("panel_close"), onclick: close })),
      el("p", { id: "np-summary", class: "muted", role: "status" }),
      el("div", { class: "scroll-x" },
        el("table", { class: "table", id: "np-calls" },
          el("thead", {}, el("tr", {},
            ["col_when", "col_outcome", "col_flag", "col_duration", "col_call"].map((k) => el("th", { scope: "col", "data-i18n": k, text: t(k) })))),
          el("tbody"))),
      el("p", { id: "np-empty", class: "empty", hidden: true }),
      el("p", { id: "np-more" }));
    dialog.addEventListener("close", () => {
      if (opener && document.contains(opener)) opener.focus();
      opener = null;
    });
    document.body.append(dialog);
  }

  async function open(number) {
    const cs = window.callsift;
    const { el, t } = cs;
    if (!dialog) build();
    opener = document.activeElement;
    dialog.dataset.number = number;
    dialog.querySelector("#np-title").textContent = t("panel_title", { number });
    for (const node of dialog.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    const tbody = dialog.querySelector("#np-calls tbody");
    tbody.replaceChildren();
    dialog.querySelector("#np-summary").textContent = "";
    dialog.querySelector("#np-empty").hidden = true;
    if (!dialog.open) dialog.showModal();
    let body;
    try {
      body = await cs.api(`/v1/calls?caller_id=${encodeURIComponent(number)}&limit=${LIMIT}`);
    } catch (err) {
      dialog.querySelector("#np-summary").textContent = t("error", { msg: err.message });
      return;
    }
    if (dialog.dataset.number !== number) return; // another number was opened meanwhile
    const calls = body.calls || [];
    tbody.replaceChildren(...calls.map((c) => {
      const score = cs.currentScore(c);
      const kind = cs.flagKind(score && score.flag);
      return el("tr", { class: `np-call flag-${kind.level}${kind.target ? " target-" + kind.target : ""}`, "data-call-id": c.call_id },
        el("td", {}, el("time", { datetime: c.started_at, text: cs.when(c.started_at) })),
        el("td", { class: "np-outcome", "data-label": c.label || "", text: c.label ? t(`lbl_${c.label}`) : t("outcome_none") }),
        el("td", { class: "np-flag" },
          el("span", { "aria-hidden": "true", text: `${kind.icon} ` }), score ? t(`flag_${score.flag}`) : t("flag_pending")),
        el("td", { class: "np-duration", text: window.CallsiftFormat.duration(c.duration_s) }),
        el("td", { class: "mono", text: c.call_id }));
    }));
    dialog.querySelector("#np-summary").textContent = t("panel_count", {
      calls: t("calls_n", { n: calls.length }), zone: window.CallsiftFormat.zoneLabel(),
    });
    const empty = dialog.querySelector("#np-empty");
    empty.hidden = calls.length > 0;
    empty.textContent = t("panel_empty");
    const can = (cs.state.me && cs.state.me.roles_allowed) || {};
    dialog.querySelector("#np-more").replaceChildren(can.queue
      ? el("button", {
        type: "button", class: "np-timeline", text: t("panel_timeline"),
        onclick: () => { close(); cs.show("queue"); cs.openNumber(number); },
      })
      : "");
  }

  function close() {
    if (dialog && dialog.open) dialog.close();
  }

  return { open, close, get isOpen() { return !!(dialog && dialog.open); } };
})();
