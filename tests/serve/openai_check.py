#!/usr/bin/env python3
"""openai_check.py - drive a running `helix serve` with the official `openai` Python client.

Used by tests/integration/t0503-serve-openai.sh; run with the venv python of scripts/pyenv.sh.
Each subcommand is one check; it prints one "ok: ..." line, or "FAIL: ..." lines on stderr and
exits 1. Every request has a timeout and no retries, so a check cannot hang.

  openai_check.py version
  openai_check.py --base-url URL/v1 --api-key KEY chat-stream  --prompt P --max-tokens N
  openai_check.py --base-url URL/v1 --api-key KEY completion   --prompt P --max-tokens N
                      --generate-json F   (F: `helix generate --json` output for P, -n N)
  openai_check.py --base-url URL/v1 --api-key KEY models       --expect-id ID
  openai_check.py --base-url URL/v1 --api-key KEY bad-key
  openai_check.py --base-url URL/v1 --api-key KEY bad-model
"""
import argparse
import json
import sys

try:
    import openai
except Exception as e:  # noqa: BLE001 - any import failure is the reason to report
    print(f"FAIL: cannot import the openai client with {sys.executable}: {e!r}", file=sys.stderr)
    sys.exit(1)

MODEL = "kjv-llama-6m"
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def done(name, detail):
    """Report the check NAME: its failures (exit 1), else "ok: NAME: DETAIL"."""
    if failures:
        for f in failures:
            print(f"FAIL: {name}: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {name}: {detail}")


def client(args, api_key=None):
    return openai.OpenAI(base_url=args.base_url, api_key=api_key or args.api_key,
                         max_retries=0, timeout=args.timeout)


def cmd_version(args):
    check(getattr(openai, "__title__", None) == "openai", f"__title__ is {openai.__title__!r}")
    check(hasattr(openai, "OpenAI"), "no openai.OpenAI class")
    done("client", f"openai {openai.__version__} ({openai.__file__})")


def cmd_chat_stream(args):
    c = client(args)
    msgs = [{"role": "user", "content": args.prompt}]
    ref = c.chat.completions.create(model=args.model, messages=msgs, max_tokens=args.max_tokens,
                                    temperature=0)
    check(ref.object == "chat.completion", f"non-streamed object is {ref.object!r}")
    check(len(ref.choices) == 1, f"non-streamed: {len(ref.choices)} choices")
    want = ref.choices[0].message.content or ""
    want_finish = ref.choices[0].finish_reason
    check(ref.choices[0].message.role == "assistant",
          f"non-streamed role is {ref.choices[0].message.role!r}")
    check(want_finish in ("stop", "length"), f"non-streamed finish_reason is {want_finish!r}")

    stream = c.chat.completions.create(model=args.model, messages=msgs,
                                       max_tokens=args.max_tokens, temperature=0, stream=True,
                                       stream_options={"include_usage": True})
    chunks = content_chunks = 0
    text = ""
    finish = None
    role = None
    usage = None
    ids = set()
    for chunk in stream:
        chunks += 1
        ids.add(chunk.id)
        check(chunk.object == "chat.completion.chunk", f"chunk {chunks}: object {chunk.object!r}")
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        ch = chunk.choices[0]
        if ch.delta.role is not None:
            role = role or ch.delta.role
        if ch.delta.content:
            content_chunks += 1
            text += ch.delta.content
        if ch.finish_reason is not None:
            check(finish is None, f"second finish_reason {ch.finish_reason!r} after {finish!r}")
            finish = ch.finish_reason
    stream.close()
    check(content_chunks > 1,
          f"not streamed: {content_chunks} chunks with content ({chunks} in all)")
    check(text != "", "streamed content is empty")
    check(text == want, f"streamed content {text!r} != non-streamed {want!r}")
    check(role == "assistant", f"streamed role is {role!r}")
    check(finish is not None, "no finish_reason in the stream")
    check(finish == want_finish,
          f"streamed finish_reason {finish!r} != non-streamed {want_finish!r}")
    check(len(ids) == 1, f"chunks carry {len(ids)} different ids")
    if check(usage is not None, "no usage chunk with stream_options.include_usage"):
        check(usage.completion_tokens == ref.usage.completion_tokens,
              f"streamed usage.completion_tokens {usage.completion_tokens} != non-streamed "
              f"{ref.usage.completion_tokens}")
        check(usage.prompt_tokens == ref.usage.prompt_tokens > 0,
              f"usage.prompt_tokens streamed {usage.prompt_tokens}, non-streamed "
              f"{ref.usage.prompt_tokens}")
    done("chat stream", f"{content_chunks} content chunks of {chunks}, finish_reason {finish}, "
         f"equal to the non-streamed chat completion: {text!r}")


def cmd_completion(args):
    with open(args.generate_json, encoding="utf-8") as f:
        gen = json.load(f)
    want = gen["text"]
    c = client(args)
    r = c.completions.create(model=args.model, prompt=args.prompt, max_tokens=args.max_tokens,
                             temperature=0)
    check(r.object == "text_completion", f"object is {r.object!r}")
    check(len(r.choices) == 1, f"{len(r.choices)} choices")
    got = r.choices[0].text
    check(want != "", "helix generate gave no text")
    check(got == want, f"completion {got!r} != helix generate {want!r}")
    n_gen = len(gen["generated_ids"])
    want_finish = "length" if n_gen == args.max_tokens else "stop"
    check(r.choices[0].finish_reason == want_finish,
          f"finish_reason {r.choices[0].finish_reason!r}, want {want_finish!r} "
          f"(generate made {n_gen} of {args.max_tokens} tokens)")
    check(r.usage.completion_tokens == n_gen,
          f"usage.completion_tokens {r.usage.completion_tokens}, generate made {n_gen}")
    check(r.usage.prompt_tokens == len(gen["prompt_ids"]),
          f"usage.prompt_tokens {r.usage.prompt_tokens}, generate's prompt has "
          f"{len(gen['prompt_ids'])} tokens")
    check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens,
          "usage.total_tokens is not the sum")
    # the same completion streamed
    text = ""
    parts = 0
    finish = None
    for chunk in c.completions.create(model=args.model, prompt=args.prompt,
                                      max_tokens=args.max_tokens, temperature=0, stream=True):
        if chunk.choices:
            if chunk.choices[0].text:
                parts += 1
                text += chunk.choices[0].text
            finish = chunk.choices[0].finish_reason or finish
    check(parts > 1, f"streamed completion came in {parts} parts")
    check(text == want, f"streamed completion {text!r} != helix generate {want!r}")
    check(finish == want_finish, f"streamed finish_reason {finish!r}, want {want_finish!r}")
    done("completion", f"plain and streamed equal helix generate -n {args.max_tokens}: {got!r}")


def cmd_models(args):
    ms = client(args).models.list()
    ids = [m.id for m in ms.data]
    if check(args.expect_id in ids, f"{args.expect_id!r} not in models.list(): {ids}"):
        m = next(m for m in ms.data if m.id == args.expect_id)
        check(m.object == "model", f"object is {m.object!r}")
    done("models", f"models.list() ids {ids}")


def cmd_bad_key(args):
    c = client(args, api_key=args.api_key + "-wrong")
    calls = {
        "models.list": lambda: c.models.list(),
        "chat.completions.create": lambda: c.chat.completions.create(
            model=args.model, messages=[{"role": "user", "content": "hi"}], max_tokens=4),
        "completions.create": lambda: c.completions.create(model=args.model, prompt="hi",
                                                           max_tokens=4),
    }
    for name, call in calls.items():
        try:
            call()
            check(False, f"{name} with a wrong key succeeded")
        except openai.AuthenticationError as e:
            check(e.status_code == 401, f"{name}: status {e.status_code}, want 401")
            check(e.code == "invalid_api_key", f"{name}: code {e.code!r}, want 'invalid_api_key'")
        except openai.APIError as e:
            check(False, f"{name}: {type(e).__name__} ({getattr(e, 'status_code', None)}), "
                         f"want AuthenticationError: {e}")
    done("bad key", "a wrong API key is refused with openai.AuthenticationError (401, "
                    "invalid_api_key) on models, chat and completions")


def cmd_bad_model(args):
    try:
        client(args).completions.create(model=args.model + "-nope", prompt="hi", max_tokens=4)
        check(False, "an unknown model succeeded")
    except openai.NotFoundError as e:
        check(e.status_code == 404, f"status {e.status_code}, want 404")
        check(e.code == "model_not_found", f"code {e.code!r}, want 'model_not_found'")
    except openai.APIError as e:
        check(False, f"{type(e).__name__} ({getattr(e, 'status_code', None)}), want NotFoundError")
    done("bad model", "an unknown model is refused with openai.NotFoundError (404, "
                      "model_not_found)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", help="helix's API, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key", default="none")
    p.add_argument("--model", default=MODEL)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version", help="the client imports; print its version")
    s = sub.add_parser("chat-stream", help="streamed chat == non-streamed chat (greedy)")
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-tokens", type=int, default=24)
    s = sub.add_parser("completion", help="completion (plain, streamed) == helix generate")
    s.add_argument("--prompt", required=True)
    s.add_argument("--max-tokens", type=int, default=16)
    s.add_argument("--generate-json", required=True, help="output of helix generate --json")
    s = sub.add_parser("models", help="models.list() lists the served model")
    s.add_argument("--expect-id", default=MODEL)
    sub.add_parser("bad-key", help="a wrong API key raises AuthenticationError (401)")
    sub.add_parser("bad-model", help="an unknown model raises NotFoundError (404)")
    args = p.parse_args()
    if args.cmd != "version" and not args.base_url:
        p.error("--base-url is required")
    fn = {"version": cmd_version, "chat-stream": cmd_chat_stream, "completion": cmd_completion,
          "models": cmd_models, "bad-key": cmd_bad_key, "bad-model": cmd_bad_model}[args.cmd]
    try:
        fn(args)
    except openai.APIError as e:
        print(f"FAIL: {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
