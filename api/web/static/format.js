// Times in the centre's time zone (GET /v1/me names it), whatever the browser's zone is.
// A call-taker in Kendari and a supervisor on a laptop set to another zone read the same
// hour, and the zone is always named beside it.
"use strict";
window.CallsiftFormat = (() => {
  let zone = "UTC";
  let offsetMin = null; // a fixed "+08:00" setting: shifted by hand (not every Intl takes it)

  function locale(lang) {
    return lang === "id" ? "id-ID" : "en-GB";
  }

  function setZone(name) {
    zone = name || "UTC";
    const m = /^([+-])(\d{1,2}):(\d{2})$/.exec(zone);
    offsetMin = m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : null;
    if (offsetMin === null) {
      try { new Intl.DateTimeFormat("en-GB", { timeZone: zone }); } catch (_) { zone = "UTC"; }
    }
  }

  function offsetText(minutes) {
    const sign = minutes < 0 ? "-" : "+";
    const abs = Math.abs(minutes);
    return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
  }

  // The zone's offset in minutes at ``date`` (from the formatted parts: no table of zones).
  function offsetAt(date) {
    if (offsetMin !== null) return offsetMin;
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric",
    }).formatToParts(date);
    const get = (type) => Number(parts.find((p) => p.type === type).value);
    const local = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"));
    return Math.round((local - Date.UTC(date.getUTCFullYear(), date.getUTCMonth(),
      date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes())) / 60000);
  }

  function currentOffset() {
    return offsetText(offsetAt(new Date()));
  }

  /** The end (23:59:59) of a day "YYYY-MM-DD" in the centre's zone, as ISO 8601 UTC. */
  function endOfDay(day) {
    const [y, m, d] = day.split("-").map(Number);
    const guess = Date.UTC(y, m - 1, d, 23, 59, 59);
    return new Date(guess - offsetAt(new Date(guess)) * 60000).toISOString();
  }

  /** "Asia/Makassar (UTC+08:00)", or "UTC". */
  function zoneLabel() {
    if (zone === "UTC") return "UTC";
    if (offsetMin !== null) return offsetText(offsetMin);
    return `${zone} (${currentOffset()})`;
  }

  /** A date and time (ISO 8601 with offset) in the centre's zone; "–" when missing. */
  function dateTime(iso, lang, { seconds = false } = {}) {
    if (!iso) return "–";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    const options = {
      year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      hourCycle: "h23", timeZone: "UTC",
    };
    if (seconds) options.second = "2-digit";
    if (offsetMin !== null) return new Intl.DateTimeFormat(locale(lang), options).format(new Date(date.getTime() + offsetMin * 60000));
    options.timeZone = zone;
    return new Intl.DateTimeFormat(locale(lang), options).format(date);
  }

  /** Today's date in the centre's zone, as a Date at UTC midnight of that day. */
  function today() {
    const now = new Date();
    if (offsetMin !== null) {
      const d = new Date(now.getTime() + offsetMin * 60000);
      return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
    }
    const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, year: "numeric", month: "numeric", day: "numeric" }).formatToParts(now);
    const get = (type) => Number(parts.find((p) => p.type === type).value);
    return new Date(Date.UTC(get("year"), get("month") - 1, get("day")));
  }

  /** Seconds as "1:05" (minutes:seconds), "–" when missing. */
  function duration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
    const s = Math.round(seconds);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  return { setZone, zoneLabel, dateTime, duration, today, endOfDay, get zone() { return zone; } };
})();
