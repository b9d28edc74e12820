// The weekly report for management (GET /v1/reports/weekly) inside the console: the page
// needs the key in a header, so it is fetched and shown in a sandboxed frame (no scripts)
// that the browser prints as it is.
"use strict";
window.CallsiftReport = (() => {
  let wired = false;

  // ISO 8601 week of a day given at UTC midnight, "2026-W49" (the week of its Thursday).
  function isoWeek(day) {
    const d = new Date(day.getTime());
    d.setUTCDate(d.getUTCDate() + 4 - (d.getUTCDay() || 7));
    const jan1 = new Date(Date.UTC(d.getUTCFullYear(), 0, 1));
    const week = Math.ceil(((d - jan1) / 86400000 + 1) / 7);
    return `${d.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
  }

  async function render() {
    const cs = window.callsift;
    const week = document.querySelector("#report-week").value;
    const msg = document.querySelector("#report-msg");
    const frame = document.querySelector("#report-frame");
    const print = document.querySelector("#report-print");
    if (!week) return;
    delete frame.dataset.ready;
    msg.textContent = cs.t("report_loading");
    print.disabled = true;
    let html;
    try {
      const resp = await cs.api(`/v1/reports/weekly?week=${encodeURIComponent(week)}&lang=${cs.state.lang}`, { raw: true });
      html = await resp.text();
    } catch (err) {
      msg.textContent = cs.t("error", { msg: err.message });
      frame.hidden = true;
      return;
    }
    // The frame inherits the console's CSP (no inline styles): the page's <style> and
    // style="" are taken out of the text before any parsing and given back through the
    // CSSOM, which CSP allows. The server escapes every value (a quote is &quot;), so
    // ' style="' only ever starts an attribute.
    let css = "";
    const inline = [];
    const page = html
      .replace(/<style>([\s\S]*?)<\/style>/g, (_, text) => { css += text; return ""; })
      .replace(/ style="([^"]*)"/g, (_, value) => ` data-cs-style="${inline.push(value.replaceAll("&quot;", '"').replaceAll("&amp;", "&")) - 1}"`);
    frame.setAttribute("title", cs.t("report_frame", { week }));
    frame.dataset.week = week;
    frame.dataset.lang = cs.state.lang;
    frame.addEventListener("load", () => {
      const fdoc = frame.contentDocument;
      const sheet = new frame.contentWindow.CSSStyleSheet();
      sheet.replaceSync(css);
      fdoc.adoptedStyleSheets = [sheet];
      for (const node of fdoc.querySelectorAll("[data-cs-style]")) node.style.cssText = inline[Number(node.dataset.csStyle)];
      msg.textContent = "";
      print.disabled = false;
      frame.dataset.ready = week + "/" + cs.state.lang;
    }, { once: true });
    frame.srcdoc = page;
    frame.hidden = false;
  }

  function load() {
    const input = document.querySelector("#report-week");
    if (!wired) {
      wired = true;
      document.querySelector("#report-form").addEventListener("submit", (ev) => { ev.preventDefault(); render(); });
      document.querySelector("#report-print").addEventListener("click", () => {
        document.querySelector("#report-frame").contentWindow.print();
      });
    }
    // This week in the centre's time zone, as the API counts weeks.
    const week = isoWeek(window.CallsiftFormat.today());
    if (!input.value) input.value = week;
    input.max = week;
    render();
  }

  return { load, isoWeek };
})();
