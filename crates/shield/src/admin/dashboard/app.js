// The mcp-shield dashboard. Everything it shows comes from the admin API with the token in the
// Authorization header; the live part is /api/security/stream read with fetch() (EventSource
// cannot send headers, and a token in a URL would reach logs). Every value from the server is
// put into the page with textContent, never as HTML: addresses, paths, tool names and the
// evidence of refused requests are attacker-controlled.
"use strict";

const TOKEN_KEY = "mcp-shield-admin-token";
const FEED_ROWS = 200;
const SERIES = [
  ["requests", "requests", "#2f6fde"],
  ["blocked", "refused", "#c8312f"],
  ["rate_limited", "rate limited", "#b8741a"],
  ["threat_detected", "threats", "#8e44ad"],
  ["ip_blocked", "IP blocked", "#23824a"],
  ["ddos_blocked", "DDoS", "#7f8c8d"],
];

let token = null;
let seconds = [];
let streamAbort = null;
let emergencyOn = false;

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "";
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    signOut("The token was refused.");
    throw new Error("unauthorized");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || data.error || response.statusText);
  return data;
}

// ---- sign in ----

function signIn(value) {
  token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
  api("GET", "/api/security/status")
    .then((status) => {
      $("sign-in").hidden = true;
      $("board").hidden = false;
      $("sign-out").hidden = false;
      showStatus(status);
      loadAll();
      openStream();
    })
    .catch((e) => {
      if (e.message !== "unauthorized") signOut("Cannot reach the admin API: " + e.message);
    });
}

function signOut(why) {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  if (streamAbort) streamAbort.abort();
  $("board").hidden = true;
  $("sign-in").hidden = false;
  $("sign-out").hidden = true;
  setConnection("signed out", "");
  for (const id of ["counters"]) $(id).replaceChildren();
  for (const id of ["components", "feed", "offenders"]) $(id).tBodies[0].replaceChildren();
  $("lookup-result").replaceChildren();
  const error = $("sign-in-error");
  error.hidden = !why;
  error.textContent = why || "";
}

function setConnection(text, className) {
  const pill = $("connection");
  pill.textContent = text;
  pill.className = "pill " + className;
}

// ---- status and counters ----

const COUNTERS = [
  ["total_requests", "requests"],
  ["blocked_requests", "refused"],
  ["rate_limited", "rate limited"],
  ["ddos_blocked", "DDoS"],
  ["ip_blocked", "IP blocked"],
  ["threat_detected", "threats"],
  ["overloaded", "overloaded"],
];

function showStatus(status) {
  const counters = $("counters");
  counters.replaceChildren();
  for (const [key, name] of COUNTERS) {
    const box = el("div", null, "counter");
    box.append(el("div", (status.statistics[key] || 0).toLocaleString(), "value"), el("div", name, "name"));
    counters.append(box);
  }
  const body = $("components").tBodies[0];
  body.replaceChildren();
  for (const [name, c] of Object.entries(status.components)) {
    const state = !c.enabled ? "off" : c.healthy ? "on" : "degraded";
    const row = el("tr");
    row.append(el("td", name), el("td", state, "state-" + state), el("td", c.backend));
    body.append(row);
  }
  // Shared state: memory, or Redis (one server or a cluster), or degraded while it is down.
  const shared = status.components.ip_lists ? status.components.ip_lists.backend : "memory";
  const redisState = !status.config.redis_configured ? "off" : shared === "degraded" ? "degraded" : "on";
  const redisRow = el("tr");
  redisRow.append(el("td", "redis"), el("td", redisState, "state-" + redisState), el("td", shared));
  body.append(redisRow);
  const emergencyRow = el("tr");
  const emergencyState = status.emergency_mode ? "on" : "off";
  emergencyRow.append(el("td", "emergency mode"), el("td", emergencyState, status.emergency_mode ? "state-degraded" : "state-off"), el("td", ""));
  body.append(emergencyRow);
  emergencyOn = !!status.emergency_mode;
  $("emergency").hidden = !emergencyOn;
}

async function refreshStatus() {
  try {
    showStatus(await api("GET", "/api/security/status"));
  } catch (_) { /* shown by the connection pill */ }
}

// ---- chart ----

function drawChart() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 1200;
  const height = canvas.clientHeight || 220;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const styles = getComputedStyle(document.documentElement);
  const muted = styles.getPropertyValue("--muted").trim() || "#888";
  const pad = { left: 44, right: 8, top: 8, bottom: 18 };
  const now = Math.floor(Date.now() / 1000);
  const start = now - 900;
  let max = 1;
  for (const s of seconds) for (const [key] of SERIES) max = Math.max(max, s[key] || 0);
  const x = (at) => pad.left + ((at - start) / 900) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
  g.fillStyle = muted;
  g.font = "11px system-ui, sans-serif";
  g.fillText(String(max), 4, pad.top + 10);
  g.fillText("0", 4, height - pad.bottom);
  g.fillText("-15 min", pad.left, height - 4);
  g.fillText("now", width - pad.right - 22, height - 4);
  for (const [key, , color] of SERIES) {
    g.strokeStyle = color;
    g.lineWidth = key === "requests" ? 2 : 1.5;
    g.beginPath();
    let started = false;
    for (const s of seconds) {
      if (s.at < start) continue;
      const px = x(s.at);
      const py = y(s[key] || 0);
      if (started) g.lineTo(px, py);
      else { g.moveTo(px, py); started = true; }
    }
    g.stroke();
  }
  canvas.dataset.points = String(seconds.length);
}

function legend() {
  const box = $("legend");
  box.replaceChildren();
  for (const [, name, color] of SERIES) {
    const item = el("span");
    const swatch = el("span", null, "swatch");
    swatch.style.background = color;
    item.append(swatch, document.createTextNode(name));
    box.append(item);
  }
}

// ---- feed ----

function where(incident) {
  const parts = [];
  for (const f of incident.threats || []) {
    let text = f.field;
    if (f.tool) text += " (tool " + f.tool + (f.argument ? ", argument " + f.argument : "") + ")";
    parts.push(text);
  }
  if (!parts.length) parts.push(incident.path || "");
  return parts.join("; ");
}

function what(incident) {
  const threats = (incident.threats || []).map((f) => f.type);
  const names = threats.length ? threats.join(", ") : incident.type;
  return incident.detail ? names + ": " + incident.detail : names;
}

function feedRow(incident) {
  const row = el("tr");
  row.className = "sev-" + incident.severity;
  const count = incident.count > 1 ? " x" + incident.count : "";
  const evidence = (incident.threats || []).map((f) => f.evidence).filter(Boolean).join(" | ");
  const whatCell = el("td", what(incident) + count);
  if (evidence) whatCell.title = evidence;
  row.append(el("td", time(incident.time_ms)), el("td", incident.ip), el("td", incident.country || ""), whatCell, el("td", where(incident)), el("td", incident.action));
  row.dataset.ip = incident.ip;
  return row;
}

function addToFeed(incident, atTop) {
  const body = $("feed").tBodies[0];
  const row = feedRow(incident);
  if (atTop) body.prepend(row);
  else body.append(row);
  while (body.rows.length > FEED_ROWS) body.deleteRow(body.rows.length - 1);
}

// ---- offenders ----

async function refreshOffenders() {
  try {
    const data = await api("GET", "/api/security/offenders");
    const body = $("offenders").tBodies[0];
    body.replaceChildren();
    for (const o of data.offenders) {
      const row = el("tr");
      const address = el("td");
      const link = el("button", o.ip);
      link.type = "button";
      link.addEventListener("click", () => { $("lookup-ip").value = o.ip; lookup(o.ip); });
      address.append(link);
      const until = o.blocked ? (o.blocked_until_ms ? time(o.blocked_until_ms) : "no end") : "";
      row.append(address, el("td", o.refusals), el("td", o.types.join(", ")),
        el("td", o.reputation === null ? "" : o.reputation.toFixed(0)), el("td", o.country || ""), el("td", until));
      body.append(row);
    }
  } catch (_) { /* next time */ }
}

// ---- tools withheld (tool integrity) ----

// Refused tools (poisoned, changed, added) and pending changes, one row per tool, with the
// fields that changed; Approve makes the server's current definition the pin.
async function refreshTools() {
  try {
    const data = await api("GET", "/api/security/tools");
    const rows = new Map();
    for (const r of data.refused) rows.set(r.upstream + " " + r.name, { upstream: r.upstream, name: r.name, why: r.detail });
    for (const p of data.pending) {
      const key = p.upstream + " " + p.name;
      const fields = p.diff.map((d) => d.field).join(", ");
      const why = p.change === "added" ? "added after the first listing" : "changed: " + fields;
      if (!rows.has(key)) rows.set(key, { upstream: p.upstream, name: p.name, why });
    }
    const body = $("tools").tBodies[0];
    body.replaceChildren();
    for (const t of rows.values()) {
      const row = el("tr");
      row.dataset.tool = t.name;
      const approve = el("button", "Approve");
      approve.type = "button";
      approve.addEventListener("click", () => approveTool(t.name));
      const action = el("td");
      action.append(approve);
      row.append(el("td", t.name), el("td", t.upstream), el("td", t.why), action);
      body.append(row);
    }
    $("tools-note").textContent = rows.size ? "" : "None: every tool clients see is as pinned. " + data.pinned.length + " pinned.";
  } catch (_) { /* next time */ }
}

async function approveTool(name) {
  if (!window.confirm("Approve the tool " + name + " as the server describes it now?")) return;
  try {
    await api("POST", "/api/security/tools/approve", { name });
    result("Approved the tool " + name + ".");
    refreshTools();
  } catch (e) {
    result(e.message, true);
  }
}

// ---- lookup ----

async function lookup(ip) {
  const out = $("lookup-result");
  out.replaceChildren(el("p", "Looking up " + ip + " ...", "note"));
  try {
    const a = await api("GET", "/api/security/threat/" + encodeURIComponent(ip));
    const kv = el("dl", null, "kv");
    const add = (k, v) => { kv.append(el("dt", k), el("dd", v)); };
    add("threat level", a.threat_level);
    add("blocked", a.blocked ? "yes" + (a.blocked_until_ms ? ", until " + time(a.blocked_until_ms) : "") : "no");
    if (a.block_reason) add("why", a.block_reason);
    add("reputation", a.reputation_score === null ? "n/a" : a.reputation_score.toFixed(1));
    if (a.geo) add("country", [a.geo.country, a.geo.city, a.geo.asn_org].filter(Boolean).join(", "));
    if (a.request_rate) add("request rate", a.request_rate.per_second.toFixed(1) + "/s, " + a.request_rate.per_minute.toFixed(0) + "/min");
    if (a.anomaly_score !== null) add("anomaly score", a.anomaly_score.toFixed(2));
    if (a.patterns.length) add("patterns", a.patterns.join(", "));
    if (a.feeds.length) add("feeds", a.feeds.join(", "));
    const recent = el("table");
    const head = el("tr");
    for (const h of ["time", "what", "where", "action"]) head.append(el("th", h));
    recent.append(head);
    for (const i of a.recent_threats) {
      const row = el("tr");
      row.className = "sev-" + i.severity;
      row.append(el("td", time(i.time_ms)), el("td", what(i) + (i.count > 1 ? " x" + i.count : "")), el("td", where(i)), el("td", i.action));
      recent.append(row);
    }
    const raw = el("details");
    raw.append(el("summary", "everything known (JSON)"), el("pre", JSON.stringify(a, null, 2)));
    out.replaceChildren(kv, el("h2", "recent threats"), recent, raw);
  } catch (e) {
    out.replaceChildren(el("p", e.message, "error"));
  }
}

// ---- actions ----

function result(text, bad) {
  const p = $("action-result");
  p.textContent = text;
  p.className = bad ? "error" : "note";
}

async function listAction(remove) {
  const kind = $("list-kind").value;
  const ip = $("list-ip").value.trim();
  if (!ip) return;
  const question = remove ? "Remove " + ip + " from the " + kind + "?" : "Add " + ip + " to the " + kind + "?";
  if (!window.confirm(question)) return;
  try {
    if (remove) {
      await api("DELETE", "/api/security/ip/" + kind + "/" + ip.split("/").map(encodeURIComponent).join("/"));
      result("Removed " + ip + " from the " + kind + ".");
    } else {
      const body = { ip, reason: $("list-reason").value.trim() || "added from the dashboard" };
      const ttl = parseInt($("list-ttl").value, 10);
      if (ttl > 0) body.ttl_seconds = ttl;
      await api("POST", "/api/security/ip/" + kind, body);
      result("Added " + ip + " to the " + kind + ".");
    }
    refreshStatus();
    refreshOffenders();
  } catch (e) {
    result(e.message, true);
  }
}

async function toggleEmergency() {
  const next = !emergencyOn;
  if (!window.confirm((next ? "Switch emergency mode on" : "Switch emergency mode off") + "?")) return;
  try {
    await api("POST", "/api/security/emergency", { enabled: next });
    result("Emergency mode " + (next ? "on." : "off."));
    refreshStatus();
  } catch (e) {
    result(e.message, true);
  }
}

// ---- the live stream ----

async function openStream() {
  if (streamAbort) streamAbort.abort();
  const abort = new AbortController();
  streamAbort = abort;
  while (token && !abort.signal.aborted) {
    try {
      const response = await fetch("/api/security/stream", {
        headers: { Authorization: "Bearer " + token, Accept: "text/event-stream" },
        cache: "no-store",
        signal: abort.signal,
      });
      if (response.status === 401) { signOut("The token was refused."); return; }
      if (!response.ok || !response.body) throw new Error(response.statusText);
      setConnection("live", "live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleMessage(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (_) {
      if (abort.signal.aborted) return;
    }
    setConnection("reconnecting", "bad");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function handleMessage(block) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) name = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return;
  let value;
  try { value = JSON.parse(data.join("\n")); } catch (_) { return; }
  if (name === "incident") {
    addToFeed(value, true);
    if (String(value.type).startsWith("tool_")) refreshTools();
  } else if (name === "second") {
    seconds.push(value);
    if (seconds.length > 900) seconds.shift();
    drawChart();
    refreshStatus();
  } else if (name === "emergency" || name === "lists") {
    refreshStatus();
    refreshOffenders();
  }
}

async function loadAll() {
  try {
    const [timeline, incidents] = await Promise.all([
      api("GET", "/api/security/timeline"),
      api("GET", "/api/security/incidents?limit=" + FEED_ROWS),
    ]);
    seconds = timeline.seconds;
    drawChart();
    $("feed").tBodies[0].replaceChildren();
    for (const i of incidents.incidents) addToFeed(i, false);
  } catch (_) { /* the stream fills in */ }
  refreshOffenders();
  refreshTools();
}

// ---- start ----

document.addEventListener("DOMContentLoaded", () => {
  legend();
  $("sign-in-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); $("token").value = ""; });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("list-form").addEventListener("submit", (e) => { e.preventDefault(); listAction(false); });
  $("list-remove").addEventListener("click", () => listAction(true));
  $("emergency-toggle").addEventListener("click", toggleEmergency);
  $("lookup-form").addEventListener("submit", (e) => { e.preventDefault(); lookup($("lookup-ip").value.trim()); });
  window.addEventListener("resize", drawChart);
  setInterval(refreshOffenders, 5000);
  setInterval(refreshTools, 5000);
  window.addEventListener("hashchange", tokenFromFragment);
  if (!tokenFromFragment() && sessionStorage.getItem(TOKEN_KEY)) {
    signIn(sessionStorage.getItem(TOKEN_KEY));
  }
});

// #token=... signs in directly; the fragment never reaches a server, and is removed from the
// address bar and history at once.
function tokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!match) return false;
  history.replaceState(null, "", location.pathname + location.search);
  signIn(decodeURIComponent(match[1]));
  return true;
}
