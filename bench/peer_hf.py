#!/usr/bin/env python3
"""peer_hf.py - Hugging Face transformers peer of helix's GPU benchmark.

Loads the HF LLaMA directory helix's bench writes (config.json + model.safetensors, bf16) with
LlamaForCausalLM in bfloat16 on the GPU and times, for each attention implementation of --attn
(the first, eager by default, is the anchor that fills the top-level "decode"/"prefill"):

  decode:  batch B with a KV cache (transformers' default DynamicCache) already filled to CTX
           random tokens (prefilled once per case, in chunks along the sequence so that eager
           attention's score matrix stays small), then --warmup + --steps steps of
           model(input_ids=next[B,1], past_key_values=cache, use_cache=True);
           ms per step = median of the steps after the warm-up (torch.cuda.synchronize +
           time.perf_counter around each step).
  prefill: batch 1, N random tokens in one forward (fresh cache, logits of the last token only),
           median of --prefill-reps runs after one warm-up.
  greedy:  --greedy N tokens from the same seeded prompt bench/peer_llamacpp.py uses.

A case that runs out of memory records its error and the run goes on.

  python3 bench/peer_hf.py --model DIR --json out.json [--batches 1,16,64] [--ctx 512,2048]
          [--prefill 512,2048] [--attn eager,sdpa]
"""

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time

PROMPT_SEED = 1234  # the same prompt as bench/peer_llamacpp.py
PROMPT_LEN = 16


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def greedy_prompt(vocab):
    r = random.Random(PROMPT_SEED)
    return [r.randrange(3, vocab) for _ in range(PROMPT_LEN)]


class Runner:
    def __init__(self, a):
        import torch
        import transformers
        self.torch = torch
        self.transformers = transformers
        self.a = a
        self.dev = torch.device(a.device)
        self.cuda = self.dev.type == "cuda"
        self.model = None
        self.impl = None

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def free(self):
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()

    def load(self, impl):
        from transformers import LlamaForCausalLM
        t0 = time.perf_counter()
        if self.model is not None:
            if hasattr(self.model, "set_attn_implementation"):
                try:
                    self.model.set_attn_implementation(impl)
                    self.impl = impl
                    return 0.0
                except Exception as e:  # fall back to a reload
                    sys.stderr.write("peer_hf: set_attn_implementation(%s) failed (%s); reloading\n" % (impl, e))
            self.model = None
            self.free()
        kw = dict(attn_implementation=impl)
        m = None
        for dkey in ("dtype", "torch_dtype"):  # transformers 5 calls it dtype, 4.x torch_dtype
            try:
                m = LlamaForCausalLM.from_pretrained(self.a.model, **{dkey: self.torch.bfloat16}, **kw)
                break
            except TypeError:
                continue
        if m is None:
            raise RuntimeError("LlamaForCausalLM.from_pretrained failed")
        m = m.to(self.dev).eval()
        if m.dtype != self.torch.bfloat16:
            m = m.to(self.torch.bfloat16)
        self.model = m
        self.impl = impl
        self.sync()
        return time.perf_counter() - t0

    def forward(self, ids, cache, last_only):
        kw = dict(input_ids=ids, past_key_values=cache, use_cache=True)
        if last_only and self.logits_to_keep_ok:
            try:
                return self.model(**kw, logits_to_keep=1)
            except TypeError:
                self.logits_to_keep_ok = False
        return self.model(**kw)

    logits_to_keep_ok = True

    def rand_ids(self, gen, b, n, vocab):
        return self.torch.randint(0, vocab, (b, n), generator=gen, device="cpu").to(self.dev)

    def prefill_cache(self, gen, B, C, vocab):
        """Fill a fresh cache with C random tokens for B rows; returns the cache."""
        cfg = self.model.config
        heads = cfg.num_attention_heads
        # eager attention materialises B x heads x chunk x C scores (fp32 softmax): keep <= ~2 GiB
        chunk = max(16, min(C, (2 << 30) // max(1, B * heads * C * 4)))
        chunk = min(C, max(16, 1 << (chunk.bit_length() - 1)))
        cache = None
        for s0 in range(0, C, chunk):
            ids = self.rand_ids(gen, B, min(chunk, C - s0), vocab)
            out = self.forward(ids, cache, True)
            cache = out.past_key_values
            del out
        self.sync()
        return cache, chunk

    def case_decode(self, B, C, vocab):
        torch = self.torch
        a = self.a
        gen = torch.Generator().manual_seed(1000 * B + C)
        n = a.warmup + a.steps
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        cache = None
        try:
            t0 = time.perf_counter()
            cache, chunk = self.prefill_cache(gen, B, C, vocab)
            t_fill = time.perf_counter() - t0
            nxt = [self.rand_ids(gen, B, 1, vocab) for _ in range(n)]
            times = []
            for i in range(n):
                self.sync()
                t0 = time.perf_counter()
                out = self.model(input_ids=nxt[i], past_key_values=cache, use_cache=True)
                self.sync()
                times.append((time.perf_counter() - t0) * 1e3)
                cache = out.past_key_values
                del out
            ms = statistics.median(times[a.warmup:])
            return {"batch": B, "ctx": C, "ms": ms, "tok_s": B * 1000.0 / ms, "ms_min": min(times[a.warmup:]),
                    "ms_steps": times, "fill_s": t_fill, "fill_chunk": chunk,
                    "peak_mem_bytes": torch.cuda.max_memory_allocated() if self.cuda else None}
        finally:
            del cache
            self.free()

    def case_prefill(self, N, vocab):
        torch = self.torch
        gen = torch.Generator().manual_seed(7 + N)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            times = []
            for rep in range(1 + self.a.prefill_reps):
                ids = self.rand_ids(gen, 1, N, vocab)
                self.sync()
                t0 = time.perf_counter()
                out = self.forward(ids, None, True)
                self.sync()
                times.append((time.perf_counter() - t0) * 1e3)
                del out
            ms = statistics.median(times[1:])
            return {"tokens": N, "ms": ms, "tok_s": N * 1000.0 / ms, "ms_runs": times,
                    "peak_mem_bytes": torch.cuda.max_memory_allocated() if self.cuda else None}
        finally:
            self.free()

    def greedy(self, n, vocab):
        torch = self.torch
        prompt = greedy_prompt(vocab)
        ids = torch.tensor([prompt], device=self.dev)
        out = self.forward(ids, None, True)
        cache, toks = out.past_key_values, []
        for _ in range(n):
            tok = int(out.logits[0, -1].float().argmax())
            toks.append(tok)
            out = self.forward(torch.tensor([[tok]], device=self.dev), cache, True)
            cache = out.past_key_values
        del out, cache
        self.free()
        return {"prompt": prompt, "tokens": toks, "attn_implementation": self.impl}


def is_oom(e):
    s = str(e).lower()
    return "out of memory" in s or "outofmemory" in type(e).__name__.lower() or "cublas_status_alloc_failed" in s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF directory (config.json + model.safetensors)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--ctx", default="512,2048")
    ap.add_argument("--prefill", default="512,2048")
    ap.add_argument("--attn", default="eager,sdpa", help="attention implementations; the first is the anchor")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prefill-reps", type=int, default=3)
    ap.add_argument("--greedy", type=int, default=8, help="greedy tokens for the weight check (0: skip)")
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to test the script")
    a = ap.parse_args()

    import torch
    import transformers
    torch.manual_seed(0)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("peer_hf: CUDA is not available (use --device cpu to test the script)")
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    vocab = int(cfg["vocab_size"])
    impls = [x.strip() for x in a.attn.split(",") if x.strip()]
    r = Runner(a)
    res = {"peer": "transformers", "version": transformers.__version__, "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "device": torch.cuda.get_device_name() if r.cuda else a.device,
           "model": os.path.abspath(a.model), "dtype": "bfloat16", "cache": "DynamicCache",
           "attn_implementation": impls[0], "steps": a.steps, "warmup": a.warmup,
           "decode": [], "prefill": [], "greedy": None, "peak_mem_bytes": None, "variants": {}}

    def save():
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)

    peak_all = 0
    torch.set_grad_enabled(False)
    with torch.inference_mode():
        for k, impl in enumerate(impls):
            var = {"decode": [], "prefill": [], "peak_mem_bytes": None}
            res["variants"][impl] = var
            if k == 0:
                var["decode"], var["prefill"] = res["decode"], res["prefill"]
            try:
                t_load = r.load(impl)
            except Exception as e:
                var["error"] = "load: %s: %s" % (type(e).__name__, e)
                print("attn %s: load failed: %s" % (impl, e), flush=True)
                save()
                continue
            var["load_s"] = t_load
            print("attn_implementation=%s (load %.1f s)" % (impl, t_load), flush=True)
            cases = [("decode", b, c) for c in ints(a.ctx) for b in ints(a.batches)]
            cases += [("prefill", n, 0) for n in ints(a.prefill)]
            for kind, x, c in cases:
                t0 = time.perf_counter()
                err = None
                try:
                    out = r.case_decode(x, c, vocab) if kind == "decode" else r.case_prefill(x, vocab)
                except Exception as e:
                    if not is_oom(e) and not isinstance(e, RuntimeError):
                        raise
                    err = "%s: %s" % ("OOM" if is_oom(e) else type(e).__name__, (str(e).splitlines() or [""])[0][:300])
                if err is not None:  # out of the except block: its traceback no longer holds the tensors
                    r.free()
                    out = ({"batch": x, "ctx": c, "ms": None, "tok_s": None, "error": err} if kind == "decode"
                           else {"tokens": x, "ms": None, "error": err})
                if kind == "decode":
                    var["decode"].append(out)
                    msg = "decode B=%-3d ctx=%-5d %s" % (x, c, "%9.2f ms/step %9.1f tok/s" % (out["ms"], out["tok_s"])
                                                         if out.get("ms") else "ERROR " + out["error"])
                else:
                    var["prefill"].append(out)
                    msg = "prefill N=%-5d %s" % (x, "%9.2f ms" % out["ms"] if out.get("ms") else "ERROR " + out["error"])
                pk = out.get("peak_mem_bytes") or 0
                var["peak_mem_bytes"] = max(var["peak_mem_bytes"] or 0, pk) or None
                peak_all = max(peak_all, pk)
                res["peak_mem_bytes"] = peak_all or None
                print("  [%s] %s   (%.1f s)" % (impl, msg, time.perf_counter() - t0), flush=True)
                save()
            if k == 0 and a.greedy > 0:
                try:
                    res["greedy"] = r.greedy(a.greedy, vocab)
                    print("  [%s] greedy %s" % (impl, res["greedy"]["tokens"]), flush=True)
                except Exception as e:
                    r.free()
                    res["greedy"] = {"error": "%s: %s" % (type(e).__name__, str(e)[:300])}
                save()

    print("\ntransformers %s, torch %s, %s" % (res["version"], res["torch"], res["device"]))
    print("%-6s %-8s %-6s %12s %12s" % ("attn", "batch", "ctx", "ms/step", "tok/s"))
    for impl, var in res["variants"].items():
        for o in var["decode"]:
            print("%-6s %-8d %-6d %12s %12s" % (impl, o["batch"], o["ctx"], "%.2f" % o["ms"] if o.get("ms") else "-",
                                               "%.1f" % o["tok_s"] if o.get("ms") else o.get("error", "")[:50]))
        for o in var["prefill"]:
            print("%-6s prefill %-6d %12s" % (impl, o["tokens"], "%.2f ms" % o["ms"] if o.get("ms")
                                              else o.get("error", "")[:50]))
    if res["peak_mem_bytes"]:
        print("peak torch memory: %.2f GiB" % (res["peak_mem_bytes"] / 2**30))
    print("wrote", a.json)


if __name__ == "__main__":
    main()
