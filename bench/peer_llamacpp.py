#!/usr/bin/env python3
"""peer_llamacpp.py - llama.cpp peer of helix's GPU benchmark.

Times llama.cpp on a GGUF (made by bench/peer_gguf.sh from the same HF directory helix reads)
through llama.cpp's low-level C API (llama_decode on a llama_batch, via the ctypes bindings of
llama-cpp-python; none of its high-level Llama class):

  decode:  B sequences (distinct seq_ids) in one context, each first prefilled to CTX tokens,
           then every step one llama_decode of B tokens (one per sequence, logits for each);
           ms per step = median of --steps steps after --warmup steps.
  prefill: one sequence of N tokens in one llama_decode (n_batch = n_ubatch >= N), logits for
           the last token; median of --prefill-reps runs after one warm-up.
  greedy:  --greedy N tokens from a fixed seeded prompt (the same one bench/peer_hf.py uses),
           to check that both peers read the same weights.

Each case runs in a child process of its own (--no-isolate: all in this one), so that a CUDA
out-of-memory abort inside llama.cpp costs that case only; its error is recorded in the JSON.

  export LD_LIBRARY_PATH=$PWD/build/peers/lib:$LD_LIBRARY_PATH PYTHONPATH=$PWD/build/peers/python
  python3 bench/peer_llamacpp.py --gguf /tmp/m.gguf --json out.json [--batches 1,16,64]
          [--ctx 512,2048] [--prefill 512,2048]
"""

import argparse
import ctypes
import importlib.util
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROMPT_SEED = 1234
PROMPT_LEN = 16

L = None  # llama_cpp.llama_cpp, once loaded
LOG = []  # llama.cpp / ggml log lines of this process
_log_cb_ref = None


def die(msg):
    sys.stderr.write("peer_llamacpp: %s\n" % msg)
    sys.exit(1)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def greedy_prompt(vocab):
    r = random.Random(PROMPT_SEED)
    return [r.randrange(3, vocab) for _ in range(PROMPT_LEN)]


def preload_cuda_runtime():
    """libggml-cuda.so needs libcudart.so.13 and libcublas(Lt).so.13. Where the dynamic loader
    does not find them (CUDA not in ld.so.conf), load them by full path from the usual places,
    the CUDA toolkit or the nvidia-* wheels that torch brings; a library already loaded under
    its soname satisfies libggml-cuda's NEEDED entry."""
    import glob
    import site
    dirs = [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "lib64"), "/usr/local/cuda/lib64",
            "/usr/local/cuda/targets/x86_64-linux/lib"] + sorted(glob.glob("/usr/local/cuda-*/lib64"), reverse=True)
    sp = []
    try:
        sp = site.getsitepackages() + [site.getusersitepackages()]
    except Exception:
        pass
    sp += [p for p in sys.path if p.endswith("-packages")]
    for d in sp:
        dirs += sorted(glob.glob(os.path.join(d, "nvidia", "*", "lib")))
    loaded = {}
    for name in ("libcudart.so.13", "libcublasLt.so.13", "libcublas.so.13"):
        try:
            ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
            loaded[name] = "ld.so"
            continue
        except OSError:
            pass
        for d in dirs:
            f = os.path.join(d, name)
            if os.path.isfile(f):
                try:
                    ctypes.CDLL(f, mode=ctypes.RTLD_GLOBAL)
                    loaded[name] = f
                    break
                except OSError:
                    continue
    return loaded


LIB_ORDER = ("libgomp.so.1", "libggml-base.so.0", "libggml-cpu.so.0", "libggml-cuda.so.0", "libggml.so.0",
             "libllama.so")


def lib_dir():
    """The directory of libllama.so & co: $LLAMA_CPP_LIB_PATH, else <repo>/build/peers/lib (set
    into LLAMA_CPP_LIB_PATH, which the bindings read), else None (the bindings' own lib/)."""
    d = os.environ.get("LLAMA_CPP_LIB_PATH")
    if not d:
        d = os.path.join(ROOT, "build", "peers", "lib")
        if not (os.path.isfile(os.path.join(d, "libllama.so")) or os.path.isfile(os.path.join(d, "libllama.so.xz"))):
            return None
        os.environ["LLAMA_CPP_LIB_PATH"] = d
    return d


def unpack_libs():
    """The carry folder holds libggml-cuda.so.0 xz-compressed (with its sha256). Unpack it, with
    a copy of the other libraries, into $TMPDIR/helix-peers-lib-UID (never into the carry folder,
    which would then be too big to carry again), once; LLAMA_CPP_LIB_PATH then points there."""
    import glob
    import hashlib
    import lzma
    d = lib_dir()
    if d is None:
        return None
    packed = sorted(glob.glob(os.path.join(d, "*.xz")))
    if not packed:
        return d

    def sha(f):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for blk in iter(lambda: fh.read(1 << 22), b""):
                h.update(blk)
        return h.hexdigest()

    def want(name):
        p = os.path.join(d, name + ".sha256")
        return open(p).read().split()[0] if os.path.isfile(p) else None

    dst = os.path.join(tempfile.gettempdir(), "helix-peers-lib-%d" % os.getuid())
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(d):
        src = os.path.join(d, f)
        if f.endswith(".xz") or not os.path.isfile(src):
            continue
        out = os.path.join(dst, f)
        if not (os.path.isfile(out) and sha(out) == sha(src)):
            shutil.copy2(src, out + ".tmp")
            os.replace(out + ".tmp", out)
    for x in packed:
        name = os.path.basename(x)[:-3]
        out = os.path.join(dst, name)
        if os.path.isfile(out) and want(name) in (None, sha(out)):
            continue
        tmp = out + ".tmp%d" % os.getpid()
        with lzma.open(x, "rb") as fi, open(tmp, "wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 22)
        if want(name) not in (None, sha(tmp)):
            os.unlink(tmp)
            die("%s: sha256 mismatch after unpacking (carry folder damaged?)" % x)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
        sys.stderr.write("peer_llamacpp: unpacked %s\n" % out)
    os.environ["LLAMA_CPP_LIB_PATH"] = dst
    return dst


def preload_libs(d):
    """Load the carried libraries by full path in dependency order (RTLD_GLOBAL), so that their
    NEEDED entries are met whatever LD_LIBRARY_PATH says."""
    for name in LIB_ORDER:
        f = os.path.join(d, name)
        if not os.path.isfile(f):
            continue
        try:
            ctypes.CDLL(f, mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            if name == "libgomp.so.1":
                continue  # the system's will do
            die("cannot load %s: %s\n  (libggml-cuda.so.0 needs libcudart.so.13, libcublas.so.13,"
                " libcublasLt.so.13 and the driver's libcuda.so.1)" % (f, e))


def load_bindings(verbose):
    """Import llama_cpp.llama_cpp without running llama_cpp/__init__.py (which pulls in the
    high-level API and its jinja2/diskcache/numpy needs); only the ctypes bindings are used."""
    global L, _log_cb_ref
    if L is not None:
        return L
    d = unpack_libs()
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        die("python package llama_cpp not found: export PYTHONPATH=%s/build/peers/python" % ROOT)
    if "llama_cpp" not in sys.modules:
        pkg = types.ModuleType("llama_cpp")
        pkg.__path__ = list(spec.submodule_search_locations)
        pkg.__file__ = spec.origin
        sys.modules["llama_cpp"] = pkg
    try:
        import typing_extensions  # noqa: F401  (the bindings import TypeAlias from it; torch brings it)
    except ImportError:
        import typing
        sys.modules["typing_extensions"] = typing  # TypeAlias is in typing since 3.10
    preload_cuda_runtime()
    if d is not None:
        preload_libs(d)
    try:
        import llama_cpp.llama_cpp as lc  # noqa: E402  (loads libllama.so)
    except Exception as e:
        die("cannot load llama.cpp's libraries from %s: %s\n  (set LD_LIBRARY_PATH=%s/build/peers/lib;"
            " libggml-cuda.so needs libcudart.so.13, libcublas.so.13, libcublasLt.so.13 and libcuda.so.1)"
            % (os.environ.get("LLAMA_CPP_LIB_PATH"), e, ROOT))

    def cb(level, text, user):
        s = text.decode("utf-8", "replace") if text else ""
        LOG.append(s)
        if verbose:
            sys.stderr.write(s)

    _log_cb_ref = lc.llama_log_callback(cb)
    lc.llama_log_set(_log_cb_ref, ctypes.c_void_p(0))
    lc.llama_backend_init()
    L = lc
    return L


def version_info():
    info = {"llama_cpp_python": None, "llama_cpp_commit": None}
    spec = importlib.util.find_spec("llama_cpp")
    if spec is not None and spec.origin:
        try:
            m = re.search(r'__version__\s*=\s*"([^"]+)"', open(spec.origin).read())
            info["llama_cpp_python"] = m.group(1) if m else None
        except OSError:
            pass
    lib = os.environ.get("LLAMA_CPP_LIB_PATH")
    cands = [os.path.dirname(os.path.abspath(lib))] if lib else []
    if spec is not None and spec.origin:  # <peers>/python/llama_cpp/__init__.py
        cands.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))))
    for d in cands + [os.path.join(ROOT, "build", "peers")]:
        p = os.path.join(d, "LLAMA_CPP_COMMIT")
        if os.path.isfile(p):
            info["llama_cpp_commit"] = open(p).read().strip()
            break
    return info


def gpu_mem_used():
    """Device-wide used memory of GPU 0 in bytes (nvidia-smi), or None."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
        return int(out.split()[0]) * 1024 * 1024
    except Exception:
        return None


class Batch:
    def __init__(self, n_max, n_seq_max):
        self.n_max = n_max
        self.b = L.llama_batch_init(n_max, 0, n_seq_max)

    def fill(self, items):
        """items: list of (token, pos, seq_id, want_logits)."""
        assert len(items) <= self.n_max
        b = self.b
        for i, (t, p, s, o) in enumerate(items):
            b.token[i] = t
            b.pos[i] = p
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = s
            b.logits[i] = 1 if o else 0
        b.n_tokens = len(items)

    def free(self):
        L.llama_batch_free(self.b)


def decode(ctx, batch):
    rc = L.llama_decode(ctx, batch.b)
    L.llama_synchronize(ctx)
    if rc != 0:
        raise RuntimeError("llama_decode returned %d" % rc)


def load_model(a):
    mp = L.llama_model_default_params()
    mp.n_gpu_layers = a.n_gpu_layers
    t0 = time.perf_counter()
    model = L.llama_model_load_from_file(a.gguf.encode(), mp)
    if not model:
        raise RuntimeError("llama_model_load_from_file failed: %s" % "".join(LOG[-5:]).strip())
    return model, time.perf_counter() - t0


def new_context(model, a, n_ctx, n_seq, n_batch):
    cp = L.llama_context_default_params()
    cp.n_ctx = n_ctx
    cp.n_batch = n_batch
    cp.n_ubatch = n_batch
    cp.n_seq_max = n_seq
    cp.n_threads = a.threads
    cp.n_threads_batch = a.threads
    cp.flash_attn_type = {"auto": L.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": L.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                          "off": L.LLAMA_FLASH_ATTN_TYPE_DISABLED}[a.flash_attn]
    cp.no_perf = True
    n_log = len(LOG)
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise RuntimeError("llama_init_from_model failed (n_ctx %d, n_seq %d): %s"
                           % (n_ctx, n_seq, "".join(LOG[-4:]).strip()))
    return ctx, LOG[n_log:]


def resolved_fa(lines):
    """What llama.cpp decided for flash attention, from its context-creation log."""
    for s in lines:
        m = re.search(r"(Flash Attention|flash_attn)\w*\s*(was\s*)?(enabled|disabled|not supported)", s, re.I)
        if m:
            return "disabled" if "not supported" in m.group(3).lower() else m.group(3).lower()
    for s in lines:
        m = re.search(r"flash_attn\s*=\s*(\S+)", s)
        if m:
            return m.group(1)
    return None


def prefill_seq(ctx, batch, n_batch, seq, tokens):
    n = len(tokens)
    for s0 in range(0, n, n_batch):
        chunk = tokens[s0:s0 + n_batch]
        batch.fill([(t, s0 + i, seq, i == len(chunk) - 1) for i, t in enumerate(chunk)])
        decode(ctx, batch)


def case_decode(model, a, vocab, B, C):
    rng = random.Random(1000 * B + C)
    n_steps = a.warmup + a.steps
    per_seq = C + n_steps + 1
    n_batch = max(a.n_batch, B)
    fit_err = None
    try:
        ctx, lines = new_context(model, a, B * per_seq, B, n_batch)
        C0 = C
    except RuntimeError as e:
        # llama.cpp pads each sequence's cache to a multiple of 256 cells, so ctx + steps
        # (2048 + 14 -> 2304) can fail to fit where a cache of exactly ctx cells does: retry with
        # the cache ending at ctx (prefill ctx - steps - 1 tokens), noted as kv_fit.
        if C <= per_seq - C or a.no_kv_fit:
            raise
        fit_err = str(e)[:300]
        ctx, lines = new_context(model, a, B * C, B, n_batch)
        C0 = C - (per_seq - C)
    batch = Batch(n_batch, B)
    try:
        t0 = time.perf_counter()
        for s in range(B):
            prefill_seq(ctx, batch, n_batch, s, [rng.randrange(vocab) for _ in range(C0)])
        t_fill = time.perf_counter() - t0
        times = []
        for step in range(n_steps):
            batch.fill([(rng.randrange(vocab), C0 + step, s, True) for s in range(B)])
            t0 = time.perf_counter()
            decode(ctx, batch)
            times.append((time.perf_counter() - t0) * 1e3)
        mem = gpu_mem_used()
        ms = statistics.median(times[a.warmup:])
        return {"batch": B, "ctx": C, "ms": ms, "tok_s": B * 1000.0 / ms,
                "ms_min": min(times[a.warmup:]), "ms_steps": times,
                "fill_s": t_fill, "n_ctx": L.llama_n_ctx(ctx), "gpu_mem_used_bytes": mem,
                "flash_attn": resolved_fa(lines), "kv_fit": fit_err is not None,
                "prefilled": C0, **({"kv_fit_reason": fit_err} if fit_err else {})}
    finally:
        batch.free()
        L.llama_free(ctx)


def case_prefill(model, a, vocab, N):
    rng = random.Random(7 + N)
    n_batch = max(a.n_batch, N)
    ctx, lines = new_context(model, a, N + 16, 1, n_batch)
    batch = Batch(n_batch, 1)
    mem_h = L.llama_get_memory(ctx)
    try:
        times = []
        for rep in range(1 + a.prefill_reps):
            L.llama_memory_clear(mem_h, True)
            batch.fill([(rng.randrange(vocab), i, 0, i == N - 1) for i in range(N)])
            t0 = time.perf_counter()
            decode(ctx, batch)
            times.append((time.perf_counter() - t0) * 1e3)
        mem = gpu_mem_used()
        ms = statistics.median(times[1:])
        return {"tokens": N, "ms": ms, "tok_s": N * 1000.0 / ms, "ms_runs": times,
                "gpu_mem_used_bytes": mem, "flash_attn": resolved_fa(lines)}
    finally:
        batch.free()
        L.llama_free(ctx)


def case_greedy(model, a, vocab, n):
    prompt = greedy_prompt(vocab)
    ctx, lines = new_context(model, a, PROMPT_LEN + n + 16, 1, 512)
    batch = Batch(512, 1)
    try:
        batch.fill([(t, i, 0, i == len(prompt) - 1) for i, t in enumerate(prompt)])
        decode(ctx, batch)
        out = []
        pos = len(prompt)
        for _ in range(n):
            lp = L.llama_get_logits_ith(ctx, -1)
            row = [lp[i] for i in range(vocab)]
            tok = max(range(vocab), key=row.__getitem__)
            out.append(tok)
            batch.fill([(tok, pos, 0, True)])
            decode(ctx, batch)
            pos += 1
        return {"prompt": prompt, "tokens": out}
    finally:
        batch.free()
        L.llama_free(ctx)


def run_case(a, spec):
    """spec: 'decode:B:C', 'prefill:N' or 'greedy:N'. Returns the result dict."""
    load_bindings(a.verbose)
    model, t_load = load_model(a)
    try:
        vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
        kind, *vals = spec.split(":")
        vals = [int(v) for v in vals]
        if kind == "decode":
            r = case_decode(model, a, vocab, *vals)
        elif kind == "prefill":
            r = case_prefill(model, a, vocab, *vals)
        else:
            r = case_greedy(model, a, vocab, *vals)
        r["load_s"] = t_load
        r["system_info"] = L.llama_print_system_info().decode("utf-8", "replace").strip()
        return r
    finally:
        L.llama_model_free(model)


def spec_error(spec, err):
    kind, *vals = spec.split(":")
    vals = [int(v) for v in vals]
    if kind == "decode":
        return {"batch": vals[0], "ctx": vals[1], "ms": None, "tok_s": None, "error": err}
    if kind == "prefill":
        return {"tokens": vals[0], "ms": None, "error": err}
    return {"error": err}


def run_isolated(a, spec):
    fd, path = tempfile.mkstemp(prefix="peer_llamacpp.", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, os.path.abspath(__file__), "--gguf", a.gguf, "--json", path, "--child", spec,
           "--n-gpu-layers", str(a.n_gpu_layers), "--threads", str(a.threads), "--n-batch", str(a.n_batch),
           "--flash-attn", a.flash_attn, "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--prefill-reps", str(a.prefill_reps)] + (["--verbose"] if a.verbose else []) \
        + (["--no-kv-fit"] if a.no_kv_fit else [])
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", timeout=a.case_timeout)
        out, rc = p.stdout, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or "") if isinstance(e.stdout, str) else "", "timeout %ds" % a.case_timeout
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError):
        r = None
    os.unlink(path)
    if rc == 0 and r is not None:
        return r
    if r is not None and "error" in r:
        return r
    tail = " | ".join(x.strip() for x in out.strip().splitlines()[-6:])
    return spec_error(spec, "child exited rc=%s: %s" % (rc, tail))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--ctx", default="512,2048")
    ap.add_argument("--prefill", default="512,2048")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prefill-reps", type=int, default=3)
    ap.add_argument("--greedy", type=int, default=8, help="greedy tokens for the weight check (0: skip)")
    ap.add_argument("--n-gpu-layers", type=int, default=999, help="999: all layers on the GPU")
    ap.add_argument("--n-batch", type=int, default=2048, help="n_batch = n_ubatch (raised to the prefill length)")
    ap.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto",
                    help="auto is llama.cpp's default: enabled where the backend supports it")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 4)
    ap.add_argument("--no-kv-fit", action="store_true",
                    help="no retry with a cache of exactly ctx cells when ctx + steps does not fit")
    ap.add_argument("--case-timeout", type=int, default=900)
    ap.add_argument("--no-isolate", action="store_true", help="run all cases in this process")
    ap.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not os.path.isfile(a.gguf):
        die("no such file: %s" % a.gguf)

    if a.child:
        try:
            r = run_case(a, a.child)
        except Exception as e:  # recorded, the parent continues
            r = spec_error(a.child, "%s: %s" % (type(e).__name__, e))
        with open(a.json, "w") as f:
            json.dump(r, f)
        return

    unpack_libs()  # once, before the children
    specs = ["decode:%d:%d" % (b, c) for c in ints(a.ctx) for b in ints(a.batches)]
    specs += ["prefill:%d" % n for n in ints(a.prefill)]
    if a.greedy > 0:
        specs.append("greedy:%d" % a.greedy)
    res = {"peer": "llama.cpp", "version": version_info(), "gguf": os.path.abspath(a.gguf),
           "n_gpu_layers": a.n_gpu_layers, "flash_attn_requested": a.flash_attn, "flash_attn": None,
           "kv_type": "f16", "n_batch": a.n_batch, "steps": a.steps, "warmup": a.warmup,
           "decode": [], "prefill": [], "greedy": None, "peak_mem_bytes": None,
           "gpu_mem_baseline_bytes": gpu_mem_used(), "system_info": None}
    base = res["gpu_mem_baseline_bytes"] or 0

    def save():
        peaks = [r.get("gpu_mem_used_bytes") for r in res["decode"] + res["prefill"] if r.get("gpu_mem_used_bytes")]
        res["peak_mem_bytes"] = (max(peaks) - base) if peaks else None
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)

    for spec in specs:
        t0 = time.perf_counter()
        if a.no_isolate:
            try:
                r = run_case(a, spec)
            except Exception as e:
                r = spec_error(spec, "%s: %s" % (type(e).__name__, e))
        else:
            r = run_isolated(a, spec)
        res["system_info"] = res["system_info"] or r.pop("system_info", None)
        r.pop("system_info", None)
        if r.get("flash_attn") and not res["flash_attn"]:
            res["flash_attn"] = r["flash_attn"]
        kind = spec.split(":")[0]
        if kind == "decode":
            res["decode"].append(r)
            msg = ("decode B=%-3d ctx=%-5d %s" % (r["batch"], r["ctx"], "%9.2f ms/step %9.1f tok/s" % (r["ms"], r["tok_s"])
                   if r.get("ms") else "ERROR " + r.get("error", "")))
        elif kind == "prefill":
            res["prefill"].append(r)
            msg = "prefill N=%-5d %s" % (r["tokens"], "%9.2f ms" % r["ms"] if r.get("ms") else "ERROR " + r.get("error", ""))
        else:
            res["greedy"] = r
            msg = "greedy %s" % (r.get("tokens") or "ERROR " + r.get("error", ""))
        print("%s   (%.1f s)" % (msg, time.perf_counter() - t0), flush=True)
        save()

    print("\nllama.cpp %s (llama-cpp-python %s), flash_attn %s -> %s, n_gpu_layers %d"
          % (res["version"]["llama_cpp_commit"], res["version"]["llama_cpp_python"], a.flash_attn,
             res["flash_attn"], a.n_gpu_layers))
    print("%-8s %-6s %12s %12s" % ("batch", "ctx", "ms/step", "tok/s"))
    for r in res["decode"]:
        print("%-8d %-6d %12s %12s" % (r["batch"], r["ctx"], "%.2f" % r["ms"] if r.get("ms") else "-",
                                       "%.1f" % r["tok_s"] if r.get("ms") else r.get("error", "")[:60]))
    for r in res["prefill"]:
        print("prefill %-6d %12s" % (r["tokens"], "%.2f ms" % r["ms"] if r.get("ms") else r.get("error", "")[:60]))
    if res["peak_mem_bytes"]:
        print("peak GPU memory (device-wide, above baseline): %.2f GiB" % (res["peak_mem_bytes"] / 2**30))
    print("wrote", a.json)


if __name__ == "__main__":
    main()
