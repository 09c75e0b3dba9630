"""The status page served at the admin endpoint's ``/``: one self-contained HTML document
(no external assets: sites have no internet) whose script polls ``/status`` every second and
draws it. The page holds no data itself, so it is served without the token; the script asks
for the token when ``/status`` answers 401 and sends it (kept for the browser tab only).
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgedns</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:.7em 1em;display:flex;flex-wrap:wrap;gap:.3em 1.2em;
align-items:baseline}
header h1{font-size:1.1em;margin:0}
main{padding:.8em;max-width:70em;margin:auto}
section{background:#fff;border-radius:6px;padding:.6em .9em;margin:.7em 0;
box-shadow:0 1px 2px #0002;overflow-x:auto}
h2{font-size:1em;margin:.2em 0 .4em}
table{border-collapse:collapse;width:100%;font-size:.92em}
td,th{text-align:left;padding:.25em .5em;border-top:1px solid #e3e5ea;white-space:nowrap}
.up{color:#176b2c;font-weight:600}.down{color:#b3261e;font-weight:600}
.drained{color:#8a5a00;font-weight:600}.bad{background:#fde8e6;color:#b3261e;padding:.4em .6em}
.muted{color:#667}button{font:inherit;padding:.1em .6em}
.hb{display:inline-flex;gap:1px;vertical-align:middle}
.hb i{display:inline-block;width:3px;height:14px;background:#d6d9df}
.hb i.u{background:#3a9b54}.hb i.d{background:#c8382c}.hb i.m{background:#e0a526}
.hb i.r{background:#4a78c2}.hb.hour i{width:2px}
#login{display:none}
</style></head>
<body>
<header><h1>edgedns</h1><span id="summary" class="muted">loading...</span></header>
<main>
<section id="login"><h2>Admin token</h2>
<form id="tokenform"><input id="token" type="password" size="30" autocomplete="off">
<button>Show status</button></form></section>
<div id="alerts"></div>
<div id="pools"></div>
<section id="fleet-box" hidden><h2>Nodes (etcd)</h2><table id="fleet"></table></section>
<section id="vrrp-box" hidden><h2>Virtual addresses</h2><table id="vrrp"></table></section>
<section id="upstreams-box" hidden><h2>Upstreams</h2><table id="upstreams"></table></section>
<section><h2>Health changes</h2><table id="changes"></table></section>
<section><h2>Queries answered</h2><table id="queries"></table></section>
</main>
<script>
"use strict";
const token = () => sessionStorage.getItem("edgedns-token");
const headers = () => token() ? {"Authorization": "Bearer " + token()} : {};
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function row(table, cells, head) {
  const tr = el("tr");
  for (const c of cells) tr.append(c instanceof Node ? wrap(head ? "th" : "td", c)
                                                     : el(head ? "th" : "td", c));
  table.append(tr);
}
function wrap(tag, node) { const e = el(tag); e.append(node); return e; }
function strip(cells, hour) {
  const hb = el("span", undefined, hour ? "hb hour" : "hb");
  hb.title = (hour ? "the last hour in 1-minute cells" : "the last 24 hours in 15-minute cells")
    + ": green up, red down, amber both, blue drained, grey unknown";
  for (const c of cells) hb.append(el("i", undefined, c === "." ? "" : c));
  return hb;
}
async function drain(pool, member, on) {
  const q = new URLSearchParams({pool: pool, member: member});
  await fetch((on ? "/drain?" : "/undrain?") + q, {method: "POST", headers: headers()});
  refresh();
}
function draw(s) {
  document.getElementById("login").style.display = "none";
  const r = s.last_reload;
  document.getElementById("summary").textContent =
    `${s.version} · ${s.config} · up ${Math.round(s.uptime_seconds)} s · ` +
    `${s.ready ? "ready" : "NOT READY"} · ${s.zones.length} zones · ` +
    `listening on ${s.listen.join(", ")} · reloads: ${r.successes} applied, ` +
    `${r.failures} refused` + (r.at ? `, the last ${r.at}` : "");
  const alerts = document.getElementById("alerts");
  alerts.replaceChildren();
  if (!r.ok) alerts.append(el("section", `Last reload refused (${r.at}): ${r.error}`, "bad"));
  if (s.health_engine.stalled) alerts.append(el("section",
    `Health engine stalled: no probe result for ${s.health_engine.seconds_since_last_result} s`,
    "bad"));
  const pools = document.getElementById("pools");
  pools.replaceChildren();
  for (const p of s.pools) {
    const box = el("section");
    const down = p.members.length && !p.healthy;
    box.append(el("h2", `${p.name}  ${p.healthy}/${p.members.length} healthy`,
                  down ? "down" : ""));
    const answering = Array.isArray(p.answering) ? p.answering.join(", ") || "nothing (NODATA)"
                                                 : p.answering;
    box.append(el("div", `policy ${p.policy} · when all down: ${p.when_all_down} · ` +
                         `answering: ${answering}`, "muted"));
    const t = el("table");
    row(t, ["member", "state", "check", "last result", "RTT p50 / p95", "last 24 h",
            "last hour", "changes", "since", "in a row", ""], true);
    for (const m of p.members) {
      const state = m.drained ? el("span", (m.up ? "UP" : "DOWN") + ", DRAINED", "drained")
                              : el("span", m.up ? "UP" : "DOWN", m.up ? "up" : "down");
      const button = el("button", m.drained ? "undrain" : "drain");
      button.onclick = () => drain(p.name, m.address, !m.drained);
      const streak = m.successes ? `${m.successes} ok` : m.failures ? `${m.failures} failed` : "";
      const rtt = m.rtt_p50_ms == null ? "" :
        `${m.rtt_p50_ms.toFixed(1)} / ${m.rtt_p95_ms.toFixed(1)} ms`;
      row(t, [m.address, state, m.check, m.reason ?? (m.probed ? "" : "not probed yet"),
              rtt, strip(m.heartbeat || ""), strip(m.heartbeat_hour || "", true),
              m.changes_24h ?? "", m.since ?? "", streak,
              button]);
    }
    box.append(t);
    pools.append(box);
  }
  const fl = document.getElementById("fleet");
  fl.replaceChildren();
  const fleet = s.etcd ? s.etcd.fleet : null;
  document.getElementById("fleet-box").hidden = !fleet || !fleet.length;
  if (fleet && fleet.length) {
    row(fl, ["node", "revision", "version", "pools down", "vrrp", "seen"], true);
    for (const n of fleet)
      row(fl, [n.node + (n.node === s.etcd.node ? " (this one)" : ""),
               el("span", `${n.revision}${n.lagging ? " LAGGING" : ""}` +
                  (n.from_cache ? " (cache)" : ""), n.lagging ? "down" : "up"),
               n.version, (n.pools_down || []).join(", ") || "none",
               (n.vrrp || []).join(", ") || "-", n.at]);
  }
  const vr = document.getElementById("vrrp");
  vr.replaceChildren();
  document.getElementById("vrrp-box").hidden = !s.vrrp;
  if (s.vrrp) {
    row(vr, ["addresses", "state", "priority", "master", "since", "why"], true);
    for (const r of s.vrrp.routers)
      row(vr, [r.addresses.join(", "), el("span", r.state.toUpperCase(),
               r.state === "master" ? "up" : r.state === "fault" ? "down" : ""),
               String(r.priority), r.master === r.self ? "this node" : (r.master ?? "-"),
               r.since ?? "", r.reason]);
  }
  const ups = document.getElementById("upstreams");
  ups.replaceChildren();
  document.getElementById("upstreams-box").hidden = !s.upstreams;
  for (const u of s.upstreams || [])
    row(ups, [u.upstream, wrap("span", el("span", u.up ? "UP" : "DOWN", u.up ? "up" : "down")),
              `${u.consecutive_failures} failures in a row`]);
  const log = document.getElementById("changes");
  log.replaceChildren();
  row(log, ["time", "member", "state", "reason", "check", "pools"], true);
  for (const c of s.changes)
    row(log, [c.time, c.member, el("span", c.state, c.state === "UP" ? "up" : "down"),
              c.reason, c.check, c.pools.join(", ")]);
  const q = document.getElementById("queries");
  q.replaceChildren();
  row(q, ["zone", "rcode", "queries", "per second"], true);
  const now = Date.now(), counts = {};
  for (const c of s.queries) {
    const key = c.zone + " " + c.rcode;
    counts[key] = c.count;
    const before = previous.counts[key];
    const rate = before === undefined || !previous.at ? "" :
      ((c.count - before) * 1000 / (now - previous.at)).toFixed(1);
    row(q, [c.zone, c.rcode, c.count, rate]);
  }
  previous = {at: now, counts: counts};
}
let previous = {at: 0, counts: {}};
async function refresh() {
  try {
    const reply = await fetch("/status", {headers: headers(), cache: "no-store"});
    if (reply.status === 401) {
      document.getElementById("login").style.display = "block";
      document.getElementById("summary").textContent = "the admin token is needed";
      return;
    }
    draw(await reply.json());
  } catch (e) {
    document.getElementById("summary").textContent = "edgedns cannot be reached: " + e;
  }
}
document.getElementById("tokenform").onsubmit = (event) => {
  event.preventDefault();
  sessionStorage.setItem("edgedns-token", document.getElementById("token").value);
  refresh();
};
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
"""
