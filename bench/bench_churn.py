#!/usr/bin/env python3
"""bench_churn.py - membership churn under a Poisson load (issue 15).

Starts `helix serve` and four workers of the bundled model on loopback (a, a2 on layers
[0, 3); b, b2 on [3, 6)), offers a Poisson load of streamed completions, and while it runs:
drains b with SIGTERM and restarts it, kills a with SIGKILL and restarts it, drains b2 through
POST /admin/drain/b2 and restarts it, stops a2 with SIGSTOP and continues it. For each event it
prints, next to its anchor (the tokens/s of the 5 s before the event), the lowest 1 s
throughput in the 5 s after it as a ratio, the time until throughput is back to 90 % of the
anchor, and for restarts the time from the restart to the first token through the new worker;
then the failed requests (must be 0) and the TTFT of the whole run.

    python3 bench/bench_churn.py [--helix build/release/helix] [--rate 8] [--tokens 32]
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MODEL = "models/kjv-llama-6m"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_cluster(work, specs):
    n = len(specs)
    idx = ", ".join(str(i) for i in range(n))
    lines = ["[NodeNames]", "total_compute_nodes=%d" % n, "", "[SourceNode]",
             "connected_nodes=[%s]" % idx, "", "[SinkNode]", "connected_nodes=[%s]" % idx, ""]
    for i in range(n):
        lines += ["[ComputeNode-%d]" % i, "type=T4", "connected_nodes=['source', 'sink']", ""]
    for i in range(n):
        lines += ["[Link-source-%d]" % i, "bandwidth=1000 * mbps", "latency=1 * MilliSec", "",
                  "[Link-%d-sink]" % i, "bandwidth=1000 * mbps", "latency=1 * MilliSec", ""]
    open(os.path.join(work, "cluster.ini"), "w").write("\n".join(lines))
    os.makedirs(os.path.join(work, "plan"), exist_ok=True)
    sol = ["[Settings]", "offset=2", "", "[Solution]"]
    for i, (_, s, e) in enumerate(specs):
        sol.append("compute_node_%d=[%s]" % (i + 2, ", ".join(str(x) for x in range(s, e))))
    open(os.path.join(work, "plan", "placement.ini"), "w").write("\n".join(sol) + "\n")


class Cluster:
    def __init__(self, helix, work, specs):
        self.helix, self.work, self.specs = helix, work, specs
        self.http = free_port()
        self.coord = "tcp://127.0.0.1:%d" % free_port()
        self.url = "127.0.0.1", self.http
        self.env = dict(os.environ, HELIX_TOKEN="churn-%d" % os.getpid(), HX_LOG="warn")
        self.workers = {}
        write_cluster(work, specs)
        self.serve = subprocess.Popen(
            [helix, "serve", "--cluster", work + "/cluster.ini", "--plan", work + "/plan",
             "--model", MODEL, "--listen", "127.0.0.1:%d" % self.http, "--workers", self.coord,
             "--names", ",".join(s[0] for s in specs), "--dead-ms", "3000"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(work + "/serve.log", "w"))
        for name, _, _ in specs:
            self.start(name)

    def start(self, name):
        self.workers[name] = subprocess.Popen(
            [self.helix, "worker", "--coordinator", self.coord, "--name", name, "--threads", "1",
             "--kv-bytes", "8000000"], env=self.env, stdout=subprocess.DEVNULL,
            stderr=open("%s/worker.%s.log" % (self.work, name), "a"))

    def get(self, path):
        c = http.client.HTTPConnection(*self.url, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def post(self, path):
        c = http.client.HTTPConnection(*self.url, timeout=5)
        c.request("POST", path, body=b"")
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    def node_tokens(self, name):
        _, m = self.get("/metrics")
        g = re.search(rb'^helix_node_tokens_total\{node="%s"\} (\d+)' % name.encode(), m, re.M)
        return int(g.group(1)) if g else 0

    def ready(self, name):
        _, m = self.get("/metrics")
        return re.search(rb'^helix_node_up\{node="%s",state="ready"\} 1' % name.encode(), m, re.M)

    def wait_healthy(self, timeout=60):
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("bench_churn: the cluster did not become healthy")

    def stop(self):
        for p in list(self.workers.values()) + [self.serve]:
            try:
                p.kill()
                p.wait()
            except OSError:
                pass


def one_request(cl, tokens, log):
    t0 = time.time()
    rec = {"t0": t0, "ok": False, "ttft": None, "tokens": []}
    try:
        c = http.client.HTTPConnection(*cl.url, timeout=60)
        body = json.dumps({"model": "kjv-llama-6m", "prompt": "And God said", "max_tokens": tokens,
                           "temperature": 0, "stream": True})
        c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            rec["err"] = "HTTP %d" % r.status
        else:
            for line in r:
                line = line.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    rec["ok"] = "err" not in rec
                    break
                ev = json.loads(data)
                if "error" in ev:
                    rec["err"] = ev["error"].get("message")
                    continue
                now = time.time()
                if rec["ttft"] is None:
                    rec["ttft"] = now - t0
                rec["tokens"].append(now)
        c.close()
    except (OSError, ValueError) as e:
        rec["err"] = str(e)
    log.append(rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--helix", default="build/release/helix")
    ap.add_argument("--rate", type=float, default=8.0, help="offered requests/s (Poisson)")
    ap.add_argument("--tokens", type=int, default=32, help="max_tokens per request")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not os.access(a.helix, os.X_OK):
        sys.exit("bench_churn: no %s (make bench)" % a.helix)
    work = tempfile.mkdtemp(prefix="hx-churn-")
    specs = [("a", 0, 3), ("a2", 0, 3), ("b", 3, 6), ("b2", 3, 6)]
    cl = Cluster(a.helix, work, specs)
    try:
        cl.wait_healthy()
        for name, _, _ in specs:
            while not cl.ready(name):
                time.sleep(0.1)
        log = []
        stop = threading.Event()
        rng = random.Random(a.seed)
        threads = []

        def generator():
            while not stop.is_set():
                time.sleep(rng.expovariate(a.rate))
                t = threading.Thread(target=one_request, args=(cl, a.tokens, log), daemon=True)
                t.start()
                threads.append(t)

        gen = threading.Thread(target=generator, daemon=True)
        t_start = time.time()
        gen.start()
        events = []

        def at(t):
            while time.time() - t_start < t:
                time.sleep(0.02)

        def restart(name, what):
            before = cl.node_tokens(name)
            tr = time.time()
            cl.start(name)
            while cl.node_tokens(name) <= before and time.time() - tr < 30:
                time.sleep(0.05)
            events.append((tr - t_start, "restart " + name + " (after " + what + ")",
                           time.time() - tr))

        at(10)
        events.append((time.time() - t_start, "SIGTERM drain of b", None))
        cl.workers["b"].send_signal(signal.SIGTERM)
        cl.workers["b"].wait(timeout=60)
        at(16)
        restart("b", "drain")
        at(24)
        events.append((time.time() - t_start, "SIGKILL of a", None))
        cl.workers["a"].kill()
        cl.workers["a"].wait()
        at(26)
        restart("a", "kill")
        at(34)
        events.append((time.time() - t_start, "admin drain of b2", None))
        assert cl.post("/admin/drain/b2") == 202
        cl.workers["b2"].wait(timeout=60)
        at(40)
        restart("b2", "admin drain")
        at(48)
        events.append((time.time() - t_start, "SIGSTOP of a2 (SIGCONT 6 s later)", None))
        cl.workers["a2"].send_signal(signal.SIGSTOP)
        at(54)
        cl.workers["a2"].send_signal(signal.SIGCONT)
        at(64)
        stop.set()
        gen.join()
        for t in threads:
            t.join(timeout=70)
        t_end = time.time() - t_start
    finally:
        cl.stop()
    # tokens/s in 1 s bins
    nb = int(t_end) + 1
    bins = [0] * nb
    for r in log:
        for ts in r["tokens"]:
            b = int(ts - t_start)
            if 0 <= b < nb:
                bins[b] += 1
    print("bench_churn: %d requests offered at %.1f/s (Poisson), %d tokens each, over %.0f s; "
          "4 CPU workers of %s on loopback" % (len(log), a.rate, a.tokens, t_end, MODEL))
    print("%-40s %8s %10s %10s %8s %12s %14s" % ("event", "at s", "anchor t/s", "min t/s",
                                                 "ratio", "recovery s", "first token s"))
    for t, what, first in sorted(events):
        b0 = int(t)
        before = bins[max(0, b0 - 5):b0]
        anchor = sum(before) / max(1, len(before))
        after = bins[b0:min(nb, b0 + 5)]
        low = min(after) if after else 0
        rec = None
        for k in range(b0, nb):
            if bins[k] >= 0.9 * anchor:
                rec = k - t
                break
        print("%-40s %8.1f %10.1f %10.1f %8.2f %12s %14s" % (
            what, t, anchor, low, low / anchor if anchor else 0,
            "%.1f" % max(0.0, rec) if rec is not None else "never",
            "%.2f" % first if first is not None else "-"))
    failed = [r for r in log if not r["ok"]]
    ttft = sorted(r["ttft"] for r in log if r["ttft"] is not None)
    p = lambda q: ttft[min(len(ttft) - 1, int(q * len(ttft)))] if ttft else float("nan")
    print("failed requests: %d of %d%s" % (len(failed), len(log),
                                           "" if not failed else " (first: %s)" % failed[0].get("err")))
    print("TTFT p50 / p95 / max over the run: %.3f / %.3f / %.3f s" % (p(0.5), p(0.95), p(1.0)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
