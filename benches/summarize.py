#!/usr/bin/env python3
"""Turns benches/compare.sh's raw rows into markdown tables (stdout) and, with
--results FILE, writes them into FILE between the compare.sh markers
(replacing the previous run's section, or appending one)."""
import argparse
import os
import re
import statistics
import subprocess

BEGIN = "<!-- compare.sh:begin -->"
END = "<!-- compare.sh:end -->"

SCENARIOS = {
    "plain": "plain forward: strangler with only `defaults.legacy` (no route); nginx `proxy_pass`; HAProxy one server",
    "sticky": "weighted sticky route: 50% new, sticky on `x-user-id`, legacy and new the same origin; nginx `split_clients` on the header over two upstreams; HAProxy `balance hdr(x-user-id)` over two servers weighted 50/50",
    "log": "the sticky route with the access log on: strangler's default `info` JSON log (`RUST_LOG=info --log-format json`, stderr to a file); nginx a JSON `log_format` to a file; HAProxy a JSON `log-format` to stdout, redirected to a file",
    "fallback": "fallback path: new answers 503 to everything, the request is replayed on legacy (200). strangler: default `[routes.fallback]`, passive ejection off; nginx: new then a `backup` server with `proxy_next_upstream http_503` and `max_fails=0`; HAProxy: `balance first`, `retry-on 503`, `retries 1`, `option redispatch 1` (the retry goes to the other server)",
    "post": "1 KiB POST on the plain forward (wrk Lua script; the load generator sends the same body)",
    "https": "HTTPS listener (TLS 1.3, a certificate made with openssl for the run; keep-alive, so handshakes are amortised), plain HTTP/1.1 to the origin",
    "h2": "HTTP/2 backend: h2c with prior knowledge to the origin (strangler `protocol = \"http2\"`, HAProxy `proto h2`). nginx cannot proxy to an HTTP/2 upstream: its row is HTTP/1.1 to the origin, for reference only",
}


def read_rows(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 13:
                rows.append(parts)
    return rows


def num(s):
    try:
        return float(s)
    except ValueError:
        return float("nan")


def clean(values):
    return [v for v in values if v == v]


def stat(values, best=max, fmt="{:,.0f}"):
    """'median (min–max)' and the best of the rounds."""
    values = clean(values)
    if not values:
        return "—", "—", None
    med = statistics.median(values)
    spread = f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})" if len(values) > 1 else fmt.format(med)
    return spread, fmt.format(best(values)), med


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool leaves the field empty
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tsv")
    ap.add_argument("idle")
    ap.add_argument("--started", default="")
    ap.add_argument("--command", default="")
    ap.add_argument("--commit", default="")
    ap.add_argument("--rate", default="2000")
    ap.add_argument("--connections", default="64")
    ap.add_argument("--rate-connections", default="32")
    ap.add_argument("--results")
    ap.add_argument("--extra", help="markdown of the reload-under-load run")
    ap.add_argument("--notes", help="lines to add after the tables")
    args = ap.parse_args()

    rows = read_rows(args.tsv)
    idle_rows = []
    rss_idle = {}
    if os.path.exists(args.idle):
        with open(args.idle) as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if p[0] == "idle" and len(p) >= 6:
                    idle_rows.append(p)
                elif p[0] == "rss_idle" and len(p) >= 4:
                    rss_idle.setdefault(p[2], []).append(num(p[3]))

    order = ["direct", "strangler", "nginx", "haproxy"]
    names = {"direct": "no proxy", "strangler": "strangler", "nginx": "nginx", "haproxy": "HAProxy"}
    scenarios = []
    for r in rows:
        if r[0] not in scenarios:
            scenarios.append(r[0])

    out = []
    model = sh("lscpu | sed -n 's/^Model name: *//p'")
    out.append(f"Run {args.started}, commit `{args.commit}`, on {sh('nproc --all')} cores ({model}), "
               f"kernel {sh('uname -r')}; {sh('nginx -v 2>&1').replace('nginx version: ', '')}, "
               f"HAProxy {sh('haproxy -v | head -1').split()[2] if sh('haproxy -v') else '?'}, "
               f"{sh('wrk -v 2>&1 | head -1').split(' [')[0]}.")
    out.append("")
    out.append(f"Command: `{args.command}`")
    out.append("")
    out.append(f"Each proxy: one worker, pinned to core 1; the origin (nginx, 256-byte answers), wrk and the "
               f"load generator on core 0. max req/s: `wrk -t1 -c{args.connections}`, keep-alive. CPU: the proxy's "
               f"process tree utime+stime (nginx: master + worker) over the wrk run, per 100k requests. p50/p99: "
               f"`examples/loadgen.rs` at a fixed {args.rate} req/s over {args.rate_connections} keep-alive connections, "
               f"open loop, latency from each request's intended send time. RSS: VmRSS (summed over the tree) after "
               f"the round. Cells: median (min–max) over the rounds; best = the best round. Ratios: medians, to nginx.")
    out.append("")

    med = {}
    for scenario in scenarios:
        out.append(f"#### {scenario}")
        out.append("")
        if scenario in SCENARIOS:
            out.append(SCENARIOS[scenario] + ".")
            out.append("")
        out.append("| | max req/s | best | CPU s / 100k req | best | p50 ms | p99 ms | best p99 | CPU s / 100k at the fixed rate | RSS MiB | errors | vs nginx: req/s, CPU, p99 |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for target in order:
            rs = [r for r in rows if r[0] == scenario and r[1] == target]
            if not rs:
                continue
            rps = [num(r[3]) for r in rs]
            cpu = [num(r[5]) / num(r[4]) * 1e5 if num(r[4]) > 0 else float("nan") for r in rs]
            p50 = [num(r[7]) for r in rs]
            p99 = [num(r[8]) for r in rs]
            rcpu = [num(r[10]) / num(r[9]) * 1e5 if num(r[9]) > 0 else float("nan") for r in rs]
            rss = [num(r[12]) / 1024 for r in rs]
            errors = sum(int(num(r[6]) if num(r[6]) == num(r[6]) else 0) + int(num(r[11]) if num(r[11]) == num(r[11]) else 0) for r in rs)
            rps_s, rps_b, rps_m = stat(rps)
            if target == "direct":
                cpu_s, cpu_b, cpu_m, rcpu_s = "—", "—", None, "—"
                rss_s = "—"
            else:
                cpu_s, cpu_b, cpu_m = stat(cpu, min, "{:.2f}")
                rcpu_s = stat(rcpu, min, "{:.2f}")[0]
                rss_s = stat(rss, min, "{:.1f}")[0]
            p50_s = stat(p50, min, "{:.2f}")[0]
            p99_s, p99_b, p99_m = stat(p99, min, "{:.2f}")
            med[(scenario, target)] = {"rps": rps_m, "cpu": cpu_m, "p99": p99_m}
            out.append(f"| {names[target]} | {rps_s} | {rps_b} | {cpu_s} | {cpu_b} | {p50_s} | {p99_s} | {p99_b} | {rcpu_s} | {rss_s} | {errors} | RATIO:{target} |")
        # Ratios once nginx's medians are known.
        n = med.get((scenario, "nginx"), {})
        for i, line in enumerate(out):
            m = re.search(r"RATIO:(\w+) \|$", line)
            if m:
                t = m.group(1)
                v = med.get((scenario, t), {})
                cell = "—" if t == "nginx" else f"{ratio(v.get('rps'), n.get('rps'))}, {ratio(v.get('cpu'), n.get('cpu'))}, {ratio(v.get('p99'), n.get('p99'))}"
                out[i] = line.replace(f"RATIO:{t}", cell)
        out.append("")

    if idle_rows:
        out.append("#### idle")
        out.append("")
        conns = max(int(num(r[5])) for r in idle_rows)
        out.append(f"RSS with {conns:,} idle keep-alive client connections, each after one answered GET "
                   f"(`loadgen idle`), fresh proxies each round (plain forward config).")
        out.append("")
        out.append("| | RSS before, MiB | RSS with the connections held, MiB | best | connections held | vs nginx |")
        out.append("|---|---:|---:|---:|---:|---|")
        for target in order:
            rs = [r for r in idle_rows if r[1] == target]
            if not rs:
                continue
            before = stat([num(r[3]) / 1024 for r in rs], min, "{:.1f}")[0]
            after_s, after_b, after_m = stat([num(r[4]) / 1024 for r in rs], min, "{:.1f}")
            held = stat([num(r[5]) for r in rs], max, "{:,.0f}")[0]
            med[("idle", target)] = {"rss": after_m}
            out.append(f"| {names[target]} | {before} | {after_s} | {after_b} | {held} | RATIO:{target} |")
        n = med.get(("idle", "nginx"), {})
        for i, line in enumerate(out):
            m = re.search(r"RATIO:(\w+) \|$", line)
            if m:
                t = m.group(1)
                cell = "—" if t == "nginx" else ratio(med.get(("idle", t), {}).get("rss"), n.get("rss"))
                out[i] = line.replace(f"RATIO:{t}", cell)
        out.append("")

    if args.extra and os.path.exists(args.extra) and os.path.getsize(args.extra):
        out.append("#### reload under load")
        out.append("")
        out.append("`benches/reload_under_load.sh`: strangler alone (one worker, core 1), p50/p99 at the fixed rate "
                   "with and without a reload of a 10,000-route file every 100 ms.")
        out.append("")
        out.append(open(args.extra).read().strip())
        out.append("")

    # The targets, from this run.
    def get(s, t, k):
        return med.get((s, t), {}).get(k)

    checks = []

    def check(what, value, target_text, ok):
        if value is None:
            return
        checks.append(f"| {what} | {value} | {target_text} | {'met' if ok else 'missed'} |")

    for k, what, better in (("cpu", "CPU per request, sticky route, vs nginx", "le"),
                            ("rps", "max req/s, sticky route, vs nginx", "ge"),
                            ("p99", f"p99 at {args.rate} req/s, sticky route, vs nginx", "le")):
        a, b = get("sticky", "strangler", k), get("sticky", "nginx", k)
        if a and b:
            r = a / b
            check(what, f"{r:.2f}×", "≥ 1.00×" if better == "ge" else "≤ 1.00×", r >= 1 if better == "ge" else r <= 1)
    a, b = get("log", "strangler", "cpu"), get("log", "nginx", "cpu")
    if a and b:
        check("CPU per request with the access log, vs nginx with its log", f"{a / b:.2f}×", "≤ 1.00×", a <= b)
    a, b = get("fallback", "strangler", "cpu"), get("plain", "strangler", "cpu")
    if a and b:
        check("fallback path CPU, vs strangler's plain request", f"{a / b:.2f}×", "≤ 2.2×", a / b <= 2.2)
    idle = clean(rss_idle.get("strangler", []))
    if idle:
        m = statistics.median(idle) / 1024
        check("RSS idle (strangler, at start)", f"{m:.1f} MiB", "< 15 MiB", m < 15)
    a = get("idle", "strangler", "rss")
    if a:
        check("RSS with the idle connections", f"{a:.1f} MiB", "< 100 MiB", a < 100)
    if checks:
        out.append("#### Targets (issue 13)")
        out.append("")
        out.append("| what | this run | target | |")
        out.append("|---|---:|---:|---|")
        out.extend(checks)
        out.append("")
    if rss_idle:
        out.append("RSS right after start, before any request (median over the scenarios, MiB): " + ", ".join(
            f"{names[t]} {statistics.median(clean(v)) / 1024:.1f}" for t, v in rss_idle.items() if clean(v) and t != "direct") + ".")
        out.append("")

    if args.notes and os.path.exists(args.notes):
        out.extend(line.rstrip("\n") for line in open(args.notes) if line.strip())
        out.append("")

    text = "\n".join(out)
    print(text)
    if args.results:
        section = f"{BEGIN}\n## Side by side with nginx and HAProxy (`benches/compare.sh`)\n\n{text}\n{END}\n"
        old = open(args.results).read() if os.path.exists(args.results) else "# Bench results\n"
        if BEGIN in old and END in old:
            new = old[: old.index(BEGIN)] + section + old[old.index(END) + len(END) + 1:]
        else:
            new = old.rstrip("\n") + "\n\n" + section
        with open(args.results, "w") as f:
            f.write(new)
        print(f"\n(written to {args.results})")


if __name__ == "__main__":
    main()
