// Keyboard shortcuts, listed by "?" (and the top bar's button). Each key presses a button
// the console already shows, so a key does nothing a click could not, and the server
// checks the role again. Keys are ignored while typing in a field.
"use strict";
window.CallsiftShortcuts = (() => {
  // [keys, i18n key, roles_allowed capability needed or null]
  const KEYS = [
    [["?"], "key_help", null],
    [["j"], "key_next", null],
    [["k"], "key_prev", null],
    [["h"], "key_history", null],
    [["1", "2", "3", "4"], "key_outcome", "dispose"],
    [["c"], "key_confirm_prank", "review"],
    [["g"], "key_confirm_ghost", "review"],
    [["x"], "key_clear", "review"],
    [["w"], "key_watch", "review"],
    [["Esc"], "key_close", null],
  ];
  const OUTCOMES = { 1: "emergency", 2: "non_emergency", 3: "prank", 4: "ghost" };
  const REVIEW = { c: "confirm_prank", g: "confirm_ghost", x: "clear" };
  let dialog = null;

  function can(cap) {
    const me = window.callsift && window.callsift.state.me;
    return !cap || !!(me && me.roles_allowed && me.roles_allowed[cap]);
  }

  function build() {
    const { el } = window.callsift;
    dialog = el("dialog", { id: "keys-panel", class: "panel", "aria-labelledby": "keys-title" },
      el("div", { class: "panel-head" },
        el("h3", { id: "keys-title" }),
        el("button", { type: "button", class: "panel-close", onclick: () => dialog.close() })),
      el("dl", { class: "keys" }));
    document.body.append(dialog);
  }

  function fill() {
    const { el, t } = window.callsift;
    dialog.querySelector("#keys-title").textContent = t("keys_title");
    dialog.querySelector(".panel-close").textContent = t("panel_close");
    dialog.querySelector(".keys").replaceChildren(...KEYS.filter(([, , cap]) => can(cap)).flatMap(([keys, text]) => [
      el("dt", {}, keys.map((k, i) => [i ? " " : null, el("kbd", { text: k })])),
      el("dd", { text: t(text) }),
    ]));
  }

  function toggle() {
    if (!dialog) build();
    if (dialog.open) { dialog.close(); return; }
    fill();
    dialog.showModal();
  }

  function relabel() {
    if (dialog && dialog.open) fill();
  }

  // The rows j and k move through: calls in the call-taker view, numbers in the queue.
  function rows() {
    const view = window.callsift.state.view;
    if (view === "calls") return [...document.querySelectorAll("#calls > li.call")];
    if (view === "queue") return [...document.querySelectorAll("#queue tbody tr")];
    return [];
  }

  function current(list) {
    const active = document.activeElement;
    return list.findIndex((row) => row === active || row.contains(active));
  }

  function move(step) {
    const list = rows();
    if (!list.length) return;
    const at = current(list);
    const next = list[Math.max(0, Math.min(list.length - 1, at < 0 ? 0 : at + step))];
    next.tabIndex = -1;
    next.classList.add("kbd-row");
    next.focus();
    next.scrollIntoView({ block: "nearest" });
  }

  function selectedNumber() {
    const list = rows();
    const at = current(list);
    if (at < 0) return null;
    const button = list[at].querySelector("button.last-calls");
    return button ? button.dataset.number : null;
  }

  function press(selector) {
    const button = document.querySelector(selector);
    if (button && !button.disabled && button.offsetParent !== null) { button.click(); return true; }
    return false;
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
    const target = ev.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    if (!window.callsift || !window.callsift.state.me) return;
    const panelOpen = window.CallsiftNumbers && window.CallsiftNumbers.isOpen;
    const key = ev.key;
    if (key === "?") { ev.preventDefault(); toggle(); return; }
    if ((dialog && dialog.open) || panelOpen) return; // a dialog has the keys (Esc closes it)
    const view = window.callsift.state.view;
    if (key === "j" || key === "k") { ev.preventDefault(); move(key === "j" ? 1 : -1); return; }
    if (key === "h") {
      const number = selectedNumber();
      if (number) { ev.preventDefault(); window.CallsiftNumbers.open(number); }
      return;
    }
    if (OUTCOMES[key] && view === "calls" && can("dispose")) {
      const list = rows();
      const at = current(list);
      if (at >= 0) {
        const button = list[at].querySelector(`button[data-label="${OUTCOMES[key]}"]`);
        if (button) { ev.preventDefault(); button.click(); }
      }
      return;
    }
    if (view !== "queue" || !can("review") || document.querySelector("#timeline").hidden) return;
    if (REVIEW[key]) {
      if (press(`#review-form button[data-action="${REVIEW[key]}"]`)) ev.preventDefault();
    } else if (key === "w") {
      ev.preventDefault();
      document.querySelector("#review-until").focus();
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.addEventListener("keydown", onKey);
    const button = document.querySelector("#keys-help");
    if (button) button.addEventListener("click", toggle);
  });

  return { toggle, relabel };
})();
