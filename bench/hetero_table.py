#!/usr/bin/env python3
"""hetero_table.py OUT METHODS SCHEDS - the table of bench/hetero.sh: the workers' measured
profiles (alone and all GPU workers at once), then per placement and scheduler the measured
offline decode tokens/s as a ratio to the best baseline, the simulator's prediction and its
error, and the online latencies next to the simulator's."""
import json
import os
import sys

out, methods, scheds = sys.argv[1], sys.argv[2].split(","), sys.argv[3].split(",")
BASELINES = ("petals", "swarm", "memory", "separate")


def kv(path):
    d = {}
    try:
        for line in open(path):
            f = line.split()
            if len(f) == 2 and not line.startswith("#"):
                try:
                    d[f[0]] = float(f[1])
                except ValueError:
                    pass
    except FileNotFoundError:
        pass
    return d


def js(path):
    try:
        return json.load(open(path))
    except (FileNotFoundError, ValueError):
        return None


def curve(path):
    pts = {}
    try:
        for line in open(path):
            a, b = line.strip().split(",")
            pts[float(a)] = float(b)
    except (FileNotFoundError, ValueError):
        pass
    return pts


def prof_dir(base):
    for root, _, files in os.walk(base):
        if "decode_bs2time.csv" in files:
            yield os.path.basename(root), root


def fmt(x, spec="%.1f"):
    return "—" if x is None else spec % x


workers = []
for line in open(os.path.join(out, "workers.txt")):
    f = line.split()
    if f and not f[0].startswith("#"):
        workers.append(f)
print("## Workers (measured by `helix profile` as each runs)\n")
print("| worker | device | MPS share | cores | memory cap | max layers | decode ms/layer b1 | b16 "
      "| b1 with all GPU workers at once | b16 at once |")
print("|---|---|---|---|---|---|---|---|---|---|")
alone = dict(prof_dir(os.path.join(out, "profile")))
tog = dict(prof_dir(os.path.join(out, "together")))
ini = [p for p in os.listdir(os.path.join(out, "profile")) if p.endswith(".ini")] \
    if os.path.isdir(os.path.join(out, "profile")) else []
max_layers = {}
if ini:
    cur = None
    for line in open(os.path.join(out, "profile", ini[0])):
        if line.startswith("[gpu "):
            cur = line.strip()[5:-1]
        elif cur and line.startswith("max_layers"):
            max_layers[cur] = int(line.split("=")[1])
for name, dev, mps, cpus, thr, mem in workers:
    a = curve(os.path.join(alone.get(name, ""), "decode_bs2time.csv"))
    t = curve(os.path.join(tog.get(name, ""), "decode_bs2time.csv")) if name in tog else {}
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        name, dev, (mps + " %") if mps != "0" else "—", cpus, mem, max_layers.get(name, "—"),
        fmt(a.get(1.0), "%.3f"), fmt(a.get(16.0), "%.3f"),
        fmt(t.get(1.0), "%.3f") + (" (%.2fx)" % (t[1.0] / a[1.0]) if t.get(1.0) and a.get(1.0) else ""),
        fmt(t.get(16.0), "%.3f") + (" (%.2fx)" % (t[16.0] / a[16.0]) if t.get(16.0) and a.get(16.0) else "")))

rows = []
for m in methods:
    for s in ["maxflow"] + scheds:
        if s != "maxflow" and m != methods[0]:
            continue
        run = kv(os.path.join(out, "runs", "%s-%s.txt" % (m, s)))
        so = js(os.path.join(out, "sim", "%s-%s-offline.json" % (m, s))) or {}
        sn = js(os.path.join(out, "sim", "%s-%s-online.json" % (m, s))) or {}
        plan = js(os.path.join(out, "plans", m, "plan.json")) or {}
        layers = " ".join("%s:%d" % (workers[n["node"]][0] if n["node"] < len(workers) else n["name"],
                                     n["n_layers"])
                          for n in plan.get("nodes", []) if n.get("n_layers", 0) > 0)
        rows.append(dict(m=m, s=s, run=run, so=so, sn=sn, plan=plan, layers=layers))

best_base = max([r["run"].get("offline_tokens_per_s", 0) for r in rows
                 if r["m"] in BASELINES and r["s"] == "maxflow"] or [0])
print("\n## Offline decode throughput (%s requests in flight)\n" % (
    int(rows[0]["run"].get("offline_in_flight", 0)) if rows else "?"))
print("| placement | scheduler | layers per worker | max-flow (plan) | measured tok/s | vs best "
      "baseline | simulated tok/s | sim error | failed |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    meas = r["run"].get("offline_tokens_per_s")
    sim = r["so"].get("decode_throughput")
    err = (sim - meas) / meas * 100 if meas and sim is not None else None
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        r["m"], r["s"], r["layers"] or "—", fmt(r["plan"].get("objective")), fmt(meas),
        fmt(meas / best_base if meas and best_base else None, "%.2fx"), fmt(sim),
        fmt(err, "%+.0f %%"), fmt(r["run"].get("failed"), "%d")))
print("\nBest baseline (%s): %.1f tokens/s." % ("/".join(BASELINES), best_base))

print("\n## Online (Poisson, %s req/s)\n" % fmt(rows[0]["run"].get("online_rate_req_s") if rows else None, "%.2f"))
print("| placement | scheduler | sustained tok/s | TTFT p50 / p95 s | sim prompt p50 / p95 s "
      "| TPOT p50 / p95 s | sim decode p50 / p95 s | unfinished |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    run, sn = r["run"], r["sn"]
    pl, dl = sn.get("prompt_latency", {}), sn.get("decode_latency", {})
    print("| %s | %s | %s | %s / %s | %s / %s | %s / %s | %s / %s | %s |" % (
        r["m"], r["s"], fmt(run.get("online_tokens_per_s")),
        fmt(run.get("online_ttft_p50_s"), "%.3f"), fmt(run.get("online_ttft_p95_s"), "%.3f"),
        fmt(pl.get("p50"), "%.3f"), fmt(pl.get("p95"), "%.3f"),
        fmt(run.get("online_tpot_p50_s"), "%.4f"), fmt(run.get("online_tpot_p95_s"), "%.4f"),
        fmt(dl.get("p50"), "%.4f"), fmt(dl.get("p95"), "%.4f"),
        fmt(run.get("online_unfinished"), "%d")))
