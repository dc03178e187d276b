//! The status page (`GET /` on the admin API, SPEC §5): one HTML page with no
//! external resource, rendered here from the same JSON values the API serves
//! (`/routes`, `/backends`, `/config`, `/status/history`), so it is readable
//! without JavaScript; its script then refreshes every figure from those
//! endpoints every 2 s.
//!
//! Every figure is an element with `data-f` (the field's path in the route's
//! `/routes` object, or a derived field such as `share`) and `data-k` (how it
//! is formatted). [`field`] and [`format`] here and `value`/`fmt` in the
//! script follow the same rules, so the first paint and every refresh agree.
//! A field the running proxy does not report shows as "—".

use std::fmt::Write;

use serde_json::Value;

/// What the page shows, as the JSON endpoints give it.
#[derive(Debug)]
pub(crate) struct Inputs {
    /// `GET /routes`.
    pub routes: Value,
    /// `GET /backends`.
    pub backends: Value,
    /// `GET /status/history`: route name → points.
    pub history: Value,
    /// `GET /config`.
    pub config: Value,
}

/// What a missing figure shows.
const MISSING: &str = "—";

/// The whole page.
pub(crate) fn render(inputs: &Inputs) -> String {
    let mut out = String::with_capacity(32 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str("<title>strangler status</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head>\n<body data-refreshes=\"0\">\n");
    header(&mut out, &inputs.config);
    backends(&mut out, &inputs.backends);
    out.push_str("<main id=\"routes\">\n");
    for route in inputs.routes.as_array().into_iter().flatten() {
        route_card(&mut out, route, &inputs.history);
    }
    out.push_str("</main>\n<footer>Figures since the proxy started, except <em>stats</em> \
                  (the live window) and the chart (one point per minute, the last one in progress). \
                  JSON: <a href=\"/routes\">/routes</a> · <a href=\"/backends\">/backends</a> · \
                  <a href=\"/config\">/config</a> · <a href=\"/status/history\">/status/history</a> · \
                  <a href=\"/metrics\">/metrics</a></footer>\n");
    out.push_str("<script>");
    out.push_str(SCRIPT);
    out.push_str("</script>\n</body></html>\n");
    out
}

fn header(out: &mut String, config: &Value) {
    let version = config["version"].as_str().unwrap_or_default();
    let _ = write!(
        out,
        "<header><h1>strangler</h1><div class=\"meta\">config <code data-c=\"version\">{}</code> \
         · generation <span data-c=\"generation\">{}</span> · loaded <span data-c=\"loaded_at\">{}</span> \
         · <span id=\"stamp\">rendered by the server</span></div>",
        escape(&version[..12.min(version.len())]),
        escape(&text_of(config.get("generation"))),
        escape(&text_of(config.get("loaded_at"))),
    );
    let error = config.get("last_error").filter(|e| !e.is_null());
    let _ = writeln!(
        out,
        "<div class=\"error\" id=\"last-error\"{}>last reload failed: <span data-c=\"last_error\">{}</span></div></header>",
        if error.is_some() { "" } else { " hidden" },
        escape(&text_of(error)),
    );
}

fn backends(out: &mut String, backends: &Value) {
    out.push_str("<nav id=\"backends\"><span class=\"label\">backends</span>");
    for backend in backends.as_array().into_iter().flatten() {
        let name = backend["name"].as_str().unwrap_or_default();
        let state = backend["state"].as_str().unwrap_or("unknown");
        let _ = write!(
            out,
            "<span class=\"backend {state}\" data-backend=\"{name}\" title=\"{url}\">{name} <b>{state}</b></span>",
            state = escape(state),
            name = escape(name),
            url = escape(backend["url"].as_str().unwrap_or_default()),
        );
    }
    out.push_str("</nav>\n");
}

/// One figure: `<span data-f data-k>formatted</span>`.
fn figure(out: &mut String, route: &Value, path: &str, kind: &str) {
    let _ = write!(
        out,
        "<span data-f=\"{path}\" data-k=\"{kind}\">{}</span>",
        escape(&format(kind, field(route, path).as_ref()))
    );
}

fn route_card(out: &mut String, route: &Value, history: &Value) {
    let name = route["name"].as_str().unwrap_or_default();
    let is_default = route["new"].is_null();
    let _ = write!(
        out,
        "<section class=\"route\" data-route=\"{n}\"><h2>{n} <small>{path}</small></h2>",
        n = escape(name),
        path = escape(
            &route["path"]
                .as_str()
                .map_or("(no route matches)".into(), |p| p.to_owned())
        ),
    );
    // Sides, with availability.
    out.push_str("<div class=\"sides\">legacy <b>");
    out.push_str(&escape(route["legacy"].as_str().unwrap_or(MISSING)));
    out.push_str("</b>");
    if !is_default {
        out.push_str(" · new <b>");
        out.push_str(&escape(route["new"].as_str().unwrap_or(MISSING)));
        out.push_str("</b> ");
        figure(out, route, "new_available", "available");
    }
    out.push_str("</div>");
    // Weights.
    out.push_str("<div class=\"weights\"><div class=\"big\">");
    figure(out, route, "weight", "pct");
    out.push_str("<small>effective weight</small></div><dl>");
    for (label, path, kind) in [
        ("file", "file_weight", "pct"),
        ("override", "override", "override"),
        ("ramp", "ramp", "ramp"),
        ("flag", "flag", "flag"),
        ("rollback", "rollback", "rollback"),
    ] {
        let _ = write!(out, "<dt>{label}</dt><dd>");
        figure(out, route, path, kind);
        out.push_str("</dd>");
    }
    out.push_str("</dl><div class=\"big\">");
    figure(out, route, "share", "pct");
    out.push_str("<small>answers from new</small></div></div>");
    // Live statistics, legacy and new side by side.
    out.push_str("<table class=\"stats\"><thead><tr><th>live window ");
    figure(out, route, "stats.window", "text");
    out.push_str("</th><th>legacy</th><th>new</th></tr></thead><tbody>");
    for (label, key, kind) in [
        ("attempts", "attempts", "n"),
        ("failures", "failures", "n"),
        ("error rate", "error_rate", "pct"),
        ("p50", "p50_ms", "ms"),
        ("p95", "p95_ms", "ms"),
        ("p99", "p99_ms", "ms"),
    ] {
        let _ = write!(out, "<tr><th>{label}</th>");
        for side in ["legacy", "new"] {
            let class = if key == "error_rate" || key == "p95_ms" {
                " class=\"key\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>");
            figure(out, route, &format!("stats.{side}.{key}"), kind);
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    // Counts since start, fallbacks, shadow.
    out.push_str("<dl class=\"counts\"><dt>answers</dt><dd>legacy ");
    figure(out, route, "requests.legacy", "n");
    out.push_str(" · new ");
    figure(out, route, "requests.new", "n");
    out.push_str(" · proxy errors ");
    figure(out, route, "requests.errors", "n");
    out.push_str("</dd><dt>new attempts</dt><dd>");
    figure(out, route, "attempts.new.total", "n");
    out.push_str(" · failed ");
    figure(out, route, "attempts.new.failed", "n");
    out.push_str("</dd><dt>fallbacks</dt><dd>");
    figure(out, route, "fallbacks", "fallbacks");
    out.push_str("</dd><dt>shadow match rate</dt><dd>");
    figure(out, route, "shadow.match_rate", "pct");
    out.push_str("</dd></dl>");
    // The last 15 minutes.
    out.push_str("<figure>");
    out.push_str(&chart(history.get(name)));
    out.push_str(
        "<figcaption><i class=\"share\"></i> new's share of answers <i class=\"errors\"></i> \
         new's error rate · last 15 minutes</figcaption></figure></section>\n",
    );
}

/// A route's value at `path`: a dotted path in its `/routes` object, or a
/// derived field (`share`: percent of answers from new since start).
pub(crate) fn field(route: &Value, path: &str) -> Option<Value> {
    if path == "share" {
        let legacy = route["requests"]["legacy"].as_f64()?;
        let new = route["requests"]["new"].as_f64()?;
        return (legacy + new > 0.0).then(|| Value::from(new * 100.0 / (legacy + new)));
    }
    let mut value = route;
    for key in path.split('.') {
        value = value.get(key)?;
    }
    (!value.is_null()).then(|| value.clone())
}

/// A figure as text; [`MISSING`] for a field that is absent, null or of an
/// unexpected type.
pub(crate) fn format(kind: &str, value: Option<&Value>) -> String {
    let Some(value) = value else {
        return MISSING.into();
    };
    let number = value.as_f64();
    match kind {
        "pct" => number.map_or(MISSING.into(), |n| format!("{}%", round1(n))),
        "ms" => number.map_or(MISSING.into(), |n| format!("{} ms", round1(n))),
        "n" => number.map_or(MISSING.into(), |n| format!("{}", n.round())),
        "available" => match value.as_bool() {
            Some(true) => "available".into(),
            Some(false) => "unavailable".into(),
            None => MISSING.into(),
        },
        "flag" => match (value["name"].as_str(), value["value"].as_bool()) {
            (Some(name), Some(on)) => format!("{name} = {on}"),
            _ => MISSING.into(),
        },
        "override" => match (value.get("weight"), value.get("value")) {
            (Some(w), _) if w.is_number() => format!(
                "{}%{}",
                round1(w.as_f64().unwrap_or_default()),
                since(value.get("set_at"))
            ),
            (_, Some(v)) if v.is_boolean() => format!("{v}{}", since(value.get("set_at"))),
            _ => MISSING.into(),
        },
        "ramp" => {
            let steps = value["steps"].as_array().map_or(0, Vec::len);
            let step = match value["step"].as_u64() {
                Some(k) => format!("step {}/{steps}", k + 1),
                None => "not started".into(),
            };
            let weight = value["weight"]
                .as_f64()
                .map_or(String::new(), |w| format!(" at {}%", round1(w)));
            let next = value["next_at"]
                .as_str()
                .map_or(String::new(), |t| format!(", next {t}"));
            format!("{step}{weight}{next}")
        }
        "rollback" => match value["state"].as_str() {
            Some(state) => {
                let reason = value["reason"]
                    .as_str()
                    .map_or(String::new(), |r| format!(": {r}"));
                format!("{state}{reason}{}", since(value.get("since")))
            }
            None => MISSING.into(),
        },
        "fallbacks" => match value {
            Value::Number(n) => n.to_string(),
            Value::Object(reasons) => {
                let parts: Vec<String> = reasons
                    .iter()
                    .filter(|(_, n)| n.as_f64().is_some_and(|n| n > 0.0))
                    .map(|(reason, n)| format!("{reason} {n}"))
                    .collect();
                if parts.is_empty() {
                    "none".into()
                } else {
                    parts.join(" · ")
                }
            }
            _ => MISSING.into(),
        },
        _ => text_of(Some(value)),
    }
}

/// `(since T)` for a timestamp, else nothing.
fn since(at: Option<&Value>) -> String {
    at.and_then(Value::as_str)
        .map_or(String::new(), |t| format!(" (since {t})"))
}

/// One decimal at most: 12.5, 25 (printed without `.0`).
fn round1(n: f64) -> f64 {
    (n * 10.0).round() / 10.0
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => MISSING.into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Chart size, in SVG user units.
const CHART_W: f64 = 320.0;
const CHART_H: f64 = 90.0;

/// Inline SVG of a route's history: new's share of answers and new's error
/// rate per minute, 0 to 100 %, over 16 slots (15 closed minutes and the
/// minute in progress). The script draws the same from `/status/history`.
pub(crate) fn chart(points: Option<&Value>) -> String {
    let points = points
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\" aria-label=\"last 15 minutes\">\
         <line class=\"grid\" x1=\"0\" y1=\"{mid}\" x2=\"{CHART_W}\" y2=\"{mid}\"/>\
         <text x=\"2\" y=\"9\">100%</text><text x=\"2\" y=\"{bottom}\">0%</text>\
         <text x=\"2\" y=\"{mid_text}\">50%</text><text x=\"{left}\" y=\"{bottom}\">-15m</text>\
         <text x=\"{right}\" y=\"{bottom}\" text-anchor=\"end\">now</text>",
        mid = CHART_H / 2.0,
        mid_text = CHART_H / 2.0 - 2.0,
        left = CHART_W / 2.0 - 40.0,
        bottom = CHART_H - 2.0,
        right = CHART_W - 2.0,
    );
    let slots = 16usize;
    let shown = &points[points.len().saturating_sub(slots)..];
    let offset = slots - shown.len();
    for (key, class) in [("new_share", "share"), ("error_rate", "errors")] {
        let xy: Vec<(f64, f64)> = shown
            .iter()
            .enumerate()
            .filter_map(|(i, point)| {
                let v = point[key].as_f64()?;
                let x = (offset + i) as f64 * CHART_W / (slots - 1) as f64;
                let y = CHART_H - 12.0 - v.clamp(0.0, 100.0) * (CHART_H - 24.0) / 100.0;
                Some((x, y))
            })
            .collect();
        let _ = write!(svg, "<polyline class=\"{class}\" points=\"");
        for (x, y) in &xy {
            let _ = write!(svg, "{x:.1},{y:.1} ");
        }
        svg.push_str("\"/>");
        // A dot per minute, so a lone point shows too.
        for (x, y) in &xy {
            let _ = write!(
                svg,
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"/>"
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// `&`, `<`, `>`, `"` and `'` as entities.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root{--bg:#0f1419;--card:#171e26;--line:#2a3440;--text:#dde4ea;--dim:#8b98a5;--new:#4aa8ff;--bad:#ff6b6b;--ok:#3ecf8e;--warn:#f5b942}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--text)}
header{padding:14px 22px;border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;gap:6px 18px;align-items:baseline}
h1{font-size:20px;margin:0;letter-spacing:.5px}.meta{color:var(--dim)}code{color:var(--text)}
.error{flex-basis:100%;color:var(--bad);font-weight:600}
#backends{padding:10px 22px;display:flex;flex-wrap:wrap;gap:8px;align-items:center;border-bottom:1px solid var(--line)}
.label{color:var(--dim);margin-right:4px}.backend{padding:3px 10px;border-radius:12px;background:var(--card);border:1px solid var(--line)}
.backend b{font-weight:600}.backend.available b{color:var(--ok)}.backend.ejected b,.backend.unhealthy b{color:var(--bad)}.backend.half_open b{color:var(--warn)}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:16px;padding:16px 22px}
.route{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
h2{margin:0 0 4px;font-size:17px}h2 small{color:var(--dim);font-weight:400;margin-left:6px}
.sides{color:var(--dim);margin-bottom:10px}.sides b{color:var(--text);font-weight:600}
[data-k=available]{padding:1px 8px;border-radius:10px;background:#1f3b2e;color:var(--ok)}
.weights{display:flex;gap:16px;align-items:center;margin-bottom:10px}
.big{font-size:28px;font-weight:700;min-width:96px}.big small{display:block;font-size:11px;color:var(--dim);font-weight:400}
.weights dl{display:grid;grid-template-columns:auto 1fr;gap:1px 10px;margin:0;flex:1;font-size:12.5px}
dt{color:var(--dim)}dd{margin:0}
table.stats{width:100%;border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
.stats th,.stats td{padding:3px 8px;text-align:right;border-bottom:1px solid var(--line)}
.stats th:first-child{text-align:left;color:var(--dim);font-weight:400}.stats thead th{color:var(--dim);font-weight:600}
.stats td.key{font-weight:700}
dl.counts{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0 0 8px;font-size:12.5px;font-variant-numeric:tabular-nums}
figure{margin:0}svg.chart{width:100%;height:90px;background:#121820;border-radius:6px}
svg .grid{stroke:var(--line);stroke-dasharray:3 4}svg text{fill:var(--dim);font-size:8px}
polyline{fill:none;stroke-width:2;stroke-linejoin:round}polyline.share{stroke:var(--new)}polyline.errors{stroke:var(--bad)}
circle.share{fill:var(--new)}circle.errors{fill:var(--bad)}
figcaption{color:var(--dim);font-size:11.5px;margin-top:3px}figcaption i{display:inline-block;width:12px;height:3px;vertical-align:middle;margin:0 4px 0 8px}
i.share{background:var(--new)}i.errors{background:var(--bad)}
footer{padding:8px 22px 20px;color:var(--dim);font-size:12px}a{color:var(--new)}
"#;

const SCRIPT: &str = r#"
"use strict";
const MISSING = "\u2014";
const W = 320, H = 90;
let refreshes = 0;
function round1(n) { return Math.round(n * 10) / 10; }
function since(t) { return typeof t === "string" ? " (since " + t + ")" : ""; }
function text(v) { return v === undefined || v === null ? MISSING : (typeof v === "string" ? v : JSON.stringify(v)); }
function value(route, path) {
  if (path === "share") {
    const r = route.requests || {};
    if (typeof r.legacy !== "number" || typeof r.new !== "number" || r.legacy + r.new === 0) return undefined;
    return r.new * 100 / (r.legacy + r.new);
  }
  let v = route;
  for (const key of path.split(".")) { if (v === null || typeof v !== "object" || !(key in v)) return undefined; v = v[key]; }
  return v === null ? undefined : v;
}
function fmt(kind, v) {
  if (v === undefined || v === null) return MISSING;
  const num = typeof v === "number";
  switch (kind) {
    case "pct": return num ? round1(v) + "%" : MISSING;
    case "ms": return num ? round1(v) + " ms" : MISSING;
    case "n": return num ? String(Math.round(v)) : MISSING;
    case "available": return v === true ? "available" : v === false ? "unavailable" : MISSING;
    case "flag": return typeof v.name === "string" && typeof v.value === "boolean" ? v.name + " = " + v.value : MISSING;
    case "override":
      if (typeof v.weight === "number") return round1(v.weight) + "%" + since(v.set_at);
      if (typeof v.value === "boolean") return v.value + since(v.set_at);
      return MISSING;
    case "ramp": {
      const steps = Array.isArray(v.steps) ? v.steps.length : 0;
      const step = typeof v.step === "number" ? "step " + (v.step + 1) + "/" + steps : "not started";
      const weight = typeof v.weight === "number" ? " at " + round1(v.weight) + "%" : "";
      const next = typeof v.next_at === "string" ? ", next " + v.next_at : "";
      return step + weight + next;
    }
    case "rollback":
      if (typeof v.state !== "string") return MISSING;
      return v.state + (typeof v.reason === "string" ? ": " + v.reason : "") + since(v.since);
    case "fallbacks":
      if (num) return String(v);
      if (typeof v === "object") {
        const parts = Object.keys(v).sort().filter(k => typeof v[k] === "number" && v[k] > 0).map(k => k + " " + v[k]);
        return parts.length ? parts.join(" \u00b7 ") : "none";
      }
      return MISSING;
    default: return text(v);
  }
}
function chart(points) {
  points = Array.isArray(points) ? points.slice(-16) : [];
  const offset = 16 - points.length;
  let svg = '<svg class="chart" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="last 15 minutes">' +
    '<line class="grid" x1="0" y1="' + H / 2 + '" x2="' + W + '" y2="' + H / 2 + '"/>' +
    '<text x="2" y="9">100%</text><text x="2" y="' + (H - 2) + '">0%</text>' +
    '<text x="2" y="' + (H / 2 - 2) + '">50%</text><text x="' + (W / 2 - 40) + '" y="' + (H - 2) + '">-15m</text>' +
    '<text x="' + (W - 2) + '" y="' + (H - 2) + '" text-anchor="end">now</text>';
  for (const [key, cls] of [["new_share", "share"], ["error_rate", "errors"]]) {
    const xy = [];
    points.forEach((p, i) => {
      if (typeof p[key] !== "number") return;
      xy.push([(offset + i) * W / 15, H - 12 - Math.min(100, Math.max(0, p[key])) * (H - 24) / 100]);
    });
    svg += '<polyline class="' + cls + '" points="' + xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1) + " ").join("") + '"/>';
    for (const [x, y] of xy) svg += '<circle class="' + cls + '" cx="' + x.toFixed(1) + '" cy="' + y.toFixed(1) + '" r="2.5"/>';
  }
  return svg + "</svg>";
}
async function json(path) {
  const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}
function shadowOf(shadow, name) {
  if (!shadow) return undefined;
  if (Array.isArray(shadow)) return shadow.find(s => s && s.name === name);
  if (shadow.routes) return shadowOf(shadow.routes, name);
  return shadow[name];
}
async function refresh() {
  const stamp = document.getElementById("stamp");
  try {
    const [routes, backends, history, config] = await Promise.all([json("/routes"), json("/backends"), json("/status/history"), json("/config")]);
    const shadow = await json("/shadow").catch(() => null);
    const shown = Array.from(document.querySelectorAll("section.route")).map(s => s.dataset.route).join("\n");
    if (shown !== routes.map(r => r.name).join("\n")) { location.reload(); return; }
    for (const section of document.querySelectorAll("section.route")) {
      const route = Object.assign({}, routes.find(r => r.name === section.dataset.route));
      const s = shadowOf(shadow, route.name);
      if (s) route.shadow = s;
      for (const el of section.querySelectorAll("[data-f]")) {
        el.textContent = fmt(el.dataset.k, value(route, el.dataset.f));
        el.dataset.refreshed = String(refreshes + 1);
      }
      const svg = section.querySelector("svg.chart");
      if (svg) svg.outerHTML = chart(history[route.name]);
    }
    const nav = document.getElementById("backends");
    nav.querySelectorAll(".backend").forEach(b => b.remove());
    for (const b of backends) {
      const el = document.createElement("span");
      el.className = "backend " + b.state; el.dataset.backend = b.name; el.title = b.url || "";
      el.append(b.name + " "); const s = document.createElement("b"); s.textContent = b.state; el.append(s);
      nav.append(el);
    }
    for (const el of document.querySelectorAll("[data-c]")) {
      const v = config[el.dataset.c];
      el.textContent = el.dataset.c === "version" && typeof v === "string" ? v.slice(0, 12) : text(v);
    }
    document.getElementById("last-error").hidden = !config.last_error;
    refreshes += 1;
    document.body.dataset.refreshes = String(refreshes);
    stamp.textContent = "updated " + new Date().toLocaleTimeString();
    stamp.className = "";
  } catch (e) {
    stamp.textContent = "refresh failed: " + e.message;
    stamp.className = "error";
  }
}
refresh();
setInterval(refresh, 2000);
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_show_a_dash() {
        let route = json!({"name": "r", "weight": 25.0, "requests": {"legacy": 3, "new": 1}});
        assert_eq!(format("pct", field(&route, "weight").as_ref()), "25%");
        assert_eq!(format("pct", field(&route, "share").as_ref()), "25%");
        assert_eq!(
            format("ms", field(&route, "stats.new.p95_ms").as_ref()),
            "—"
        );
        assert_eq!(format("override", field(&route, "override").as_ref()), "—");
    }

    #[test]
    fn v2_fields_are_formatted() {
        let route = json!({
            "override": {"weight": 12.5, "set_at": "2026-12-01T10:00:00Z"},
            "ramp": {"step": 1, "steps": [10, 25, 50], "weight": 25, "next_at": null},
            "rollback": {"state": "tripped", "reason": "error rate 12% > 5%", "since": null},
            "stats": {"window": "60s", "new": {"p95_ms": 123.456, "error_rate": 2.04}},
            "fallbacks": {"status": 3, "connect": 0, "timeout": 1},
        });
        let f = |kind, path| format(kind, field(&route, path).as_ref());
        assert_eq!(
            f("override", "override"),
            "12.5% (since 2026-12-01T10:00:00Z)"
        );
        assert_eq!(f("ramp", "ramp"), "step 2/3 at 25%");
        assert_eq!(f("rollback", "rollback"), "tripped: error rate 12% > 5%");
        assert_eq!(f("ms", "stats.new.p95_ms"), "123.5 ms");
        assert_eq!(f("pct", "stats.new.error_rate"), "2%");
        assert_eq!(f("text", "stats.window"), "60s");
        assert_eq!(
            f("fallbacks", "fallbacks"),
            "connect 0 · status 3 · timeout 1".replace("connect 0 · ", "")
        );
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn chart_draws_the_points_it_has() {
        let points = json!([{"new_share": 0.0, "error_rate": null}, {"new_share": 100.0, "error_rate": 50.0}]);
        let svg = chart(Some(&points));
        assert!(
            svg.contains("<polyline class=\"share\" points=\"298.7,78.0 320.0,12.0 \"/>"),
            "{svg}"
        );
        assert!(
            svg.contains("<polyline class=\"errors\" points=\"320.0,45.0 \"/>"),
            "{svg}"
        );
        assert!(
            svg.contains("<circle class=\"errors\" cx=\"320.0\" cy=\"45.0\" r=\"2.5\"/>"),
            "{svg}"
        );
    }
}
