/**
 * The live dashboard served at `GET /dashboard`: one HTML page with a small script, no build
 * step and no dependency (a string in this module, so the package, its `pnpm pack` output and the
 * CLI bundle all carry it).
 *
 * The page holds no data and needs no credentials. It asks for an admin token (or takes it from
 * the URL fragment, `/dashboard#token=…`, which browsers never send to the server), keeps it in
 * `sessionStorage` (gone when the tab closes), and every 2 seconds reads `GET /v1/admin/clients`
 * and `GET /v1/admin/activity` with it: the clients with their cursor, lag and last push and pull;
 * push/pull throughput (mutations per interval) over the last minutes as a chart; the log's
 * latest seq; refusals by status.
 *
 * @since 0.1.0
 */

const script = String.raw`
"use strict";
const $ = (id) => document.getElementById(id);
const key = "autosync.adminToken";
const fragment = new URLSearchParams(location.hash.slice(1)).get("token");
if (fragment) {
  sessionStorage.setItem(key, fragment);
  history.replaceState(null, "", location.pathname + location.search);
}
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
const ago = (iso, now) => {
  if (iso === null) return "never";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
};
const get = async (path, token) => {
  const res = await fetch(path, { headers: { authorization: "Bearer " + token }, cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.message || res.status + " " + res.statusText), { status: res.status });
  return body;
};
const series = [["pushed", "#2563eb"], ["pulled", "#16a34a"]];
const chart = (buckets) => {
  const w = 600, h = 160, pad = 4;
  const max = Math.max(1, ...buckets.flatMap((b) => [b.pushed, b.pulled]));
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, buckets.length - 1);
  const y = (v) => h - pad - (v * (h - 2 * pad)) / max;
  $("chart").innerHTML = series.map(([name, colour]) =>
    '<polyline class="series" data-series="' + name + '" fill="none" stroke="' + colour + '" stroke-width="2" points="' +
      buckets.map((b, i) => x(i).toFixed(1) + "," + y(b[name]).toFixed(1)).join(" ") + '"/>'
  ).join("");
  $("chart-max").textContent = max + " mutations / " + buckets.length + " intervals";
};
const render = (clients, activity) => {
  const now = Date.now();
  $("latest").textContent = activity.latest_seq;
  $("count").textContent = clients.clients.length;
  const rejected = Object.entries(activity.rejections);
  $("rejections").textContent = rejected.length === 0
    ? "0"
    : rejected.map(([status, n]) => n + " × " + status).join(", ");
  const last = activity.buckets.at(-1) ?? { pushed: 0, pulled: 0 };
  $("rate").textContent = last.pushed + " pushed, " + last.pulled + " pulled in the last " + activity.interval_ms / 1000 + " s";
  $("clients").innerHTML = clients.clients.map((c) =>
    '<tr data-client="' + esc(c.client_id) + '"><td class="id">' + esc(c.client_id) + "</td><td>" + esc(c.token_id ?? "") +
      "</td><td>" + (c.cursor ?? "–") + '</td><td class="lag">' + (c.lag ?? "–") + "</td><td>" + ago(c.last_push_at, now) +
      "</td><td>" + ago(c.last_pull_at, now) + "</td><td>" + c.pushed + "</td><td>" + c.pulled + "</td></tr>"
  ).join("") || '<tr><td colspan="8">no client has synced yet</td></tr>';
  chart(activity.buckets);
  $("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
};
const ask = (message) => {
  $("login").hidden = false;
  $("main").hidden = true;
  $("login-message").textContent = message;
};
let timer;
const poll = async () => {
  clearTimeout(timer);
  const token = sessionStorage.getItem(key);
  if (!token) return ask("Enter an admin token (autosync token create --admin).");
  try {
    const [clients, activity] = await Promise.all([get("/v1/admin/clients", token), get("/v1/admin/activity", token)]);
    $("login").hidden = true;
    $("main").hidden = false;
    $("error").textContent = "";
    render(clients, activity);
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      sessionStorage.removeItem(key);
      return ask(e.message);
    }
    $("error").textContent = "could not reach the server: " + e.message;
  }
  timer = setTimeout(poll, 2000);
};
$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(key, $("token").value.trim());
  $("token").value = "";
  poll();
});
$("forget").addEventListener("click", () => {
  sessionStorage.removeItem(key);
  poll();
});
poll();
`

/**
 * The page.
 *
 * @since 0.1.0
 * @category constants
 */
export const html: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>autosync dashboard</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #111; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 1rem; }
  h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; }
  .cards { display: flex; gap: 1rem; flex-wrap: wrap; }
  .card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }
  .card b { display: block; font-size: 1.4rem; }
  table { border-collapse: collapse; background: #fff; width: 100%; }
  th, td { border-bottom: 1px solid #eee; padding: .3rem .6rem; text-align: left; white-space: nowrap; }
  td.id { font-family: ui-monospace, monospace; }
  svg { background: #fff; border: 1px solid #ddd; border-radius: 6px; width: 100%; max-width: 600px; height: 160px; }
  .legend span { margin-right: 1rem; }
  #error { color: #b91c1c; }
  small { color: #666; }
</style>
</head>
<body>
<h1>autosync</h1>
<form id="login" hidden>
  <p id="login-message"></p>
  <input id="token" type="password" autocomplete="off" placeholder="admin token" size="50">
  <button>Show</button>
</form>
<div id="main" hidden>
  <div class="cards">
    <div class="card">latest seq<b id="latest">–</b></div>
    <div class="card">clients<b id="count">–</b></div>
    <div class="card">refused (since start)<b id="rejections">–</b></div>
  </div>
  <h2>Throughput <small id="rate"></small></h2>
  <div class="legend"><span style="color:#2563eb">■ pushed</span><span style="color:#16a34a">■ pulled</span>
    <small id="chart-max"></small></div>
  <svg id="chart" viewBox="0 0 600 160" preserveAspectRatio="none"></svg>
  <h2>Clients</h2>
  <table>
    <thead><tr><th>client id</th><th>token</th><th>cursor</th><th>lag</th><th>last push</th><th>last pull</th>
      <th>pushed</th><th>pulled</th></tr></thead>
    <tbody id="clients"></tbody>
  </table>
  <p><small id="updated"></small> · <a href="#" id="forget">forget the token</a></p>
  <p id="error"></p>
</div>
<script>${script}</script>
</body>
</html>
`
