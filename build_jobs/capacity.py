"""The capacity Job's client: drives one serving replica through a concurrency sweep and reports
its capacity curve (throughput and time to first token per step) as JSON on the termination log.

    python3 capacity.py --runtime trtllm-serve --url http://10.0.0.7:8000 --input-tokens 512 \
        --output-tokens 128 --concurrency 1,2,4,8 --step-seconds 30 --slo-ttft 2.0

Standard library only (it runs in NVIDIA's serving images). Each step is a closed loop: that many
threads each send one request, wait for its last token, and send the next. Only requests whose first
token (TTFT) or last token (throughput) falls in the measured window count; the warm-up before it
fills the batch. The sweep stops after the first step whose TTFT p95 misses the SLO: more load only
queues longer, and every further step is GPU time spent on a known answer.

Before the sweep, a prefill probe (``--prefill-tokens SHORT,LONG``): one request at a time asking
for one output token, first with SHORT-token prompts, then with LONG ones. The difference of their
mean TTFTs is the prefill time of LONG - SHORT tokens: the fixed costs of a request (HTTP, the
server's scheduling, tokenizing) are in both and cancel, where a single TTFT counts them as prefill.

Protocols, as the real servers speak them:
- trtllm-serve: the OpenAI completions API, ``POST /v1/completions`` with ``stream: true`` and
  ``stream_options.include_usage`` (server-sent events ending in ``data: [DONE]``), and
  ``ignore_eos`` so every answer has the asked length; the model id from ``GET /v1/models``; ready
  at ``GET /health`` (checked against TensorRT-LLM's ``serve/openai_protocol.py``, main 2026).
- Triton: the generate extension on the ``ensemble`` model, ``POST .../generate_stream`` (one event
  per token in decoupled mode) or, for a non-streaming deployment, ``.../generate``. A model that
  answers in one response shows its first token only with the last (TTFT is then the whole latency,
  a conservative figure), and its output is counted as the tokens asked (the generate extension
  reports no token counts; prompts count as their words).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

REPORT_LIMIT = 4000  # a termination message holds at most 4096 bytes
WORDS = (
    "the of and to in is was for on that with as by at from his it an were are which this be "
    "or has had not but their one all new more have its first also after who two been can time "
    "they would there out up other into over year only most some three when city may world many"
).split()


@dataclass
class Result:
    """One request: when it was sent, saw its first token and finished; the tokens both ways."""

    sent: float
    first: float | None = None
    done: float | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    error: str = ""


@dataclass
class Target:
    """Where and how to send requests."""

    runtime: str
    url: str
    model: str = ""
    streaming: bool = True
    timeout: float = 300.0
    parts: Any = field(init=False)

    def __post_init__(self) -> None:
        self.parts = urllib.parse.urlsplit(self.url)

    def connection(self) -> http.client.HTTPConnection:
        """A new connection to the server (one per request: SSE answers end with the stream)."""
        return http.client.HTTPConnection(
            self.parts.hostname, self.parts.port or 80, timeout=self.timeout
        )


def prompt(tokens: int, seed: int) -> str:
    """About `tokens` tokens of common English words (one token each in the usual tokenizers),
    started at another word per request so no two prompts share a cached prefix."""
    return " ".join(WORDS[(seed * 7 + i) % len(WORDS)] for i in range(tokens))


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-1) of `values` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


def events(response: http.client.HTTPResponse) -> Any:
    """The `data:` payloads of a server-sent event stream, as they arrive."""
    while True:
        line = response.readline()
        if not line:
            return
        text = line.decode("utf-8", "replace").strip()
        if text.startswith("data:"):
            yield text[5:].strip()


def post(target: Target, path: str, body: dict[str, Any]) -> tuple[Any, Any]:
    """Send a JSON POST; (connection, response). An HTTP error status raises with its body."""
    conn = target.connection()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        detail = response.read()[:300].decode("utf-8", "replace")
        conn.close()
        raise RuntimeError(f"HTTP {response.status} from {path}: {detail}")
    return conn, response


def openai_request(target: Target, text: str, args: argparse.Namespace, result: Result) -> None:
    """One streamed completion from trtllm-serve's OpenAI API, timed."""
    body = {
        "model": target.model,
        "prompt": text,
        "max_tokens": args.output_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    conn, response = post(target, "/v1/completions", body)
    try:
        for data in events(response):
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("object") == "error" or "message" in chunk and "choices" not in chunk:
                raise RuntimeError(str(chunk.get("message") or chunk))
            if any(c.get("text") for c in chunk.get("choices") or []):
                result.first = result.first or time.monotonic()
                result.output_tokens += 1
            usage = chunk.get("usage") or {}
            if usage:
                result.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                result.output_tokens = int(usage.get("completion_tokens") or 0)
    finally:
        conn.close()
    result.prompt_tokens = result.prompt_tokens or args.input_tokens


def triton_request(target: Target, text: str, args: argparse.Namespace, result: Result) -> None:
    """One generation from Triton's generate extension (streamed when the deployment streams)."""
    body: dict[str, Any] = {"text_input": text, "max_tokens": args.output_tokens}
    model = f"/v2/models/{target.model or 'ensemble'}"
    if not target.streaming:
        conn, response = post(target, f"{model}/generate", body)
        reply = json.loads(response.read() or b"{}")
        conn.close()
        if "error" in reply:
            raise RuntimeError(str(reply["error"]))
        result.first = time.monotonic()
        result.output_tokens = args.output_tokens
    else:
        conn, response = post(target, f"{model}/generate_stream", {**body, "stream": True})
        try:
            for data in events(response):
                piece = json.loads(data)
                if "error" in piece:
                    raise RuntimeError(str(piece["error"]))
                result.first = result.first or time.monotonic()
                result.output_tokens += 1
        finally:
            conn.close()
        if result.output_tokens <= 1:  # one response for the whole answer (not decoupled)
            result.output_tokens = args.output_tokens
    result.prompt_tokens = args.input_tokens


def one_request(target: Target, args: argparse.Namespace, seed: int) -> Result:
    """Send one request of the mix; its timings (an error is recorded, not raised)."""
    result = Result(sent=time.monotonic())
    send = openai_request if target.runtime == "trtllm-serve" else triton_request
    try:
        send(target, prompt(args.input_tokens, seed), args, result)
        result.done = time.monotonic()
        result.first = result.first or result.done
    except (OSError, ValueError, RuntimeError, http.client.HTTPException) as error:
        result.error = str(error)[:200]
    return result


def closed_loop(target: Target, args: argparse.Namespace, concurrency: int) -> list[Result]:
    """`concurrency` workers sending back to back until the step's window ends."""
    stop_at = time.monotonic() + args.warmup_seconds + args.step_seconds
    results: list[Result] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        seed = index * 100003
        while time.monotonic() < stop_at:
            seed += 1
            result = one_request(target, args, seed)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.step_seconds + args.warmup_seconds + target.timeout)
    with lock:
        return list(results)


def summarize(
    concurrency: int, results: list[Result], start: float, args: argparse.Namespace
) -> dict[str, Any]:
    """One point of the curve (status.capacity.points' shape, camelCase) from a step's requests."""
    begin, end = start + args.warmup_seconds, start + args.warmup_seconds + args.step_seconds
    ok = [r for r in results if not r.error and r.done is not None]
    finished = [r for r in ok if begin <= r.done < end]  # type: ignore[operator]
    ttfts = [r.first - r.sent for r in ok if r.first is not None and begin <= r.first < end]
    seconds = float(args.step_seconds)
    return {
        "concurrency": concurrency,
        "requestsPerSecond": len(finished) / seconds,
        "promptTokensPerSecond": sum(r.prompt_tokens for r in finished) / seconds,
        "outputTokensPerSecond": sum(r.output_tokens for r in finished) / seconds,
        "ttftP50Seconds": percentile(ttfts, 0.50),
        "ttftP95Seconds": percentile(ttfts, 0.95),
        "ttftMeanSeconds": sum(ttfts) / len(ttfts) if ttfts else 0.0,
    }


def errors_of(results: list[Result]) -> tuple[int, str]:
    """How many requests failed, and the first error's words."""
    failed = [r for r in results if r.error]
    return len(failed), failed[0].error if failed else ""


def measure_step(target: Target, args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    """Run one step; RuntimeError when most of its requests failed or none finished."""
    start = time.monotonic()
    results = closed_loop(target, args, concurrency)
    failed, first_error = errors_of(results)
    if not results or failed * 2 > len(results):
        raise RuntimeError(
            f"concurrency {concurrency}: {failed} of {len(results)} requests failed: {first_error}"
        )
    point = summarize(concurrency, results, start, args)
    if point["requestsPerSecond"] <= 0:
        raise RuntimeError(
            f"concurrency {concurrency}: no request finished within {args.step_seconds} s "
            f"(raise stepSeconds or lower outputTokens)"
        )
    return point


def mean_ttft(target: Target, args: argparse.Namespace, tokens: int) -> float:
    """Mean TTFT of one-token answers to `tokens`-token prompts, one at a time, over a step."""
    probe = argparse.Namespace(
        **{**vars(args), "input_tokens": tokens, "output_tokens": 1, "warmup_seconds": 1.0}
    )
    probe.step_seconds = args.prefill_seconds
    start = time.monotonic()
    results = closed_loop(target, probe, 1)
    begin, end = start + probe.warmup_seconds, start + probe.warmup_seconds + probe.step_seconds
    ttfts = [
        r.first - r.sent for r in results if not r.error and r.first and begin <= r.first < end
    ]
    if not ttfts:
        failed, error = errors_of(results)
        raise RuntimeError(f"prefill probe: no {tokens}-token prompt answered ({failed}: {error})")
    return sum(ttfts) / len(ttfts)


def prefill_probe(target: Target, args: argparse.Namespace) -> dict[str, Any] | None:
    """Prompt tokens/s of prefill from two prompt lengths (None when not asked, or when the longer
    prompt was not slower: too little to tell from noise)."""
    if not args.prefill_tokens:
        return None
    short, long = args.prefill_tokens
    first, second = mean_ttft(target, args, short), mean_ttft(target, args, long)
    rate = (long - short) / (second - first) if second > first else None
    log(f"Prefill probe: {short} tokens {first:.4f} s, {long} tokens {second:.4f} s: {rate} tok/s")
    return {
        "shortTokens": short,
        "longTokens": long,
        "shortTtftSeconds": first,
        "longTtftSeconds": second,
        "tokensPerSecond": rate,
    }


def sweep(target: Target, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every step of the sweep in order, stopping after the first that misses the SLO."""
    points = []
    for concurrency in args.concurrency:
        point = measure_step(target, args, concurrency)
        points.append(point)
        log(
            f"Measured concurrency {concurrency}: {point['requestsPerSecond']:.2f} req/s, "
            f"{point['outputTokensPerSecond']:.0f} output tok/s, TTFT p50 "
            f"{point['ttftP50Seconds']:.3f} s, p95 {point['ttftP95Seconds']:.3f} s"
        )
        if point["ttftP95Seconds"] > args.slo_ttft:
            break
    return points


def wait_ready(target: Target, timeout: float) -> None:
    """Poll the server's readiness endpoint until 200; RuntimeError after `timeout` seconds."""
    path = "/health" if target.runtime == "trtllm-serve" else "/v2/health/ready"
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            conn = target.connection()
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as error:
            last = str(error)
        time.sleep(1.0)
    raise RuntimeError(f"{target.url}{path} not ready after {timeout:g} s ({last})")


def served_model(target: Target) -> str:
    """The model id trtllm-serve serves (GET /v1/models), which completions must name."""
    conn = target.connection()
    conn.request("GET", "/v1/models")
    reply = json.loads(conn.getresponse().read() or b"{}")
    conn.close()
    models = reply.get("data") or []
    if not models:
        raise RuntimeError(f"{target.url}/v1/models lists no model")
    return str(models[0]["id"])


def rounded(value: Any) -> Any:
    """Floats to 4 significant digits (the report must fit a termination message)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def report(
    points: list[dict[str, Any]],
    args: argparse.Namespace,
    seconds: float,
    prefill: dict[str, Any] | None = None,
) -> dict:
    """The summary the operator reads: the curve, the prefill probe, the mix and the highest
    concurrency within the SLO (None when even the first step missed it)."""
    good = [p["concurrency"] for p in points if p["ttftP95Seconds"] <= args.slo_ttft]
    return rounded(
        {
            "ok": True,
            "runtime": args.runtime,
            "inputTokens": args.input_tokens,
            "outputTokens": args.output_tokens,
            "sloTtftSeconds": args.slo_ttft,
            "maxConcurrency": max(good) if good else None,
            "seconds": seconds,
            "points": points,
        }
        | ({"prefill": prefill} if prefill else {})
    )


def write_report(summary: dict[str, Any], path: str) -> None:
    """Print the summary and write it (under 4 KiB: the last points go first) to `path`."""
    text = json.dumps(summary, separators=(",", ":"))
    while len(text) > REPORT_LIMIT and summary.get("points"):
        summary = {**summary, "points": summary["points"][:-1], "truncated": True}
        text = json.dumps(summary, separators=(",", ":"))
    print(text, flush=True)
    if path:
        try:
            with open(path, "w") as handle:
                handle.write(text[:REPORT_LIMIT])
        except OSError as error:
            log(f"Could not write the report to {path}: {error}")


def log(message: str) -> None:
    """One line on stderr (the Job's log)."""
    print(message, file=sys.stderr, flush=True)


def concurrency_list(text: str) -> list[int]:
    """`1,2,4` -> [1, 2, 4] (each at least 1)."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"concurrency must be a list of integers >= 1: {text}")
    return values


def token_pair(text: str) -> tuple[int, int]:
    """Two prompt lengths, shorter first."""
    try:
        short, long = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"prefill tokens must be SHORT,LONG: {text}") from None
    if not 1 <= short < long:
        raise argparse.ArgumentTypeError(f"prefill tokens need 1 <= SHORT < LONG: {text}")
    return short, long


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line the operator's capacity Job passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=("triton", "trtllm-serve"), required=True)
    parser.add_argument("--url", required=True, help="http://host:port of the server")
    parser.add_argument(
        "--model", default="", help="Triton model (ensemble); serve: from /v1/models"
    )
    parser.add_argument("--no-streaming", dest="streaming", action="store_false")
    parser.add_argument("--input-tokens", type=int, default=512)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=concurrency_list, default=[1, 2, 4, 8, 16, 32])
    parser.add_argument("--step-seconds", type=float, default=30.0)
    parser.add_argument(
        "--prefill-tokens", type=token_pair, default=None, help="SHORT,LONG prompt tokens"
    )
    parser.add_argument("--prefill-seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--slo-ttft", type=float, default=2.0)
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--request-timeout", type=float, default=300.0)
    parser.add_argument("--report", default="/dev/termination-log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Wait for the server, run the sweep, report; exit 1 with the error reported on failure."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    target = Target(args.runtime, args.url, args.model, args.streaming, args.request_timeout)
    started = time.monotonic()
    try:
        wait_ready(target, args.ready_timeout)
        if args.runtime == "trtllm-serve" and not target.model:
            target.model = served_model(target)
        log(f"Measuring {args.url} ({args.runtime}): concurrency {args.concurrency}")
        prefill = prefill_probe(target, args)
        points = sweep(target, args)
    except (RuntimeError, OSError, ValueError, http.client.HTTPException) as error:
        write_report({"ok": False, "error": str(error)[:2000]}, args.report)
        return 1
    write_report(report(points, args, time.monotonic() - started, prefill), args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
