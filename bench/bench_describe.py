"""Benchmark the LLM describer against a real local server: concurrency and the cache.

Mines ``--episodes`` kept episodes from a synthetic dataset, starts llama.cpp's
``llama-server`` with the tests' tiny generated model (``tests/llm_server.py``
builds the binary once and caches it), and describes every episode (two
requests each) in the same run:

* at concurrency 1 (the baseline) and at ``--concurrency`` (default 8), each
  with an empty answer cache: episodes per second and the speed-up;
* again at ``--concurrency`` on the warm cache: the rerun's wall time
  (target: under 2 s for 1,000 episodes) and the requests it sent (0);
* at concurrency 1 and ``--concurrency`` against a server with a fixed
  latency (``--latency-ms``, the tests' proxy answering a valid JSON after that
  delay, as a remote API would): what concurrency buys when the server is not
  the bottleneck.

On 2 cores llama-server is CPU-bound even at one request at a time, so the
local server saturates at once; the latency run shows the describer's own
concurrency.  Run it with::

    uv run python bench/bench_describe.py [--episodes 1000] [--concurrency 8]
        [--latency-ms 50] [--latency-episodes 300] [--skip-local]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.llm_server
from miner import pipeline
from miner.describe_stage import DescribeReport, describe_episodes, read_episodes
from miner.llm.client import LLMOptions
from miner.record import Episode
from tests.fault_proxy import FaultProxy, reply
from tests.llm_episodes import write_kept_episodes
from tests.llm_server import LlamaServer, llama_server_binary, write_tiny_model

WARM_TARGET_S_PER_1000 = 2.0


def describe(
    episodes: list[Episode], base_url: str, cache: Path, concurrency: int
) -> DescribeReport:
    options = LLMOptions(
        model="tiny", base_url=base_url, concurrency=concurrency, context_tokens=300
    )
    cache.mkdir(exist_ok=True)
    _described, report = describe_episodes(episodes, options, cache)
    return report


def line(label: str, report: DescribeReport, episodes: int) -> str:
    rate = episodes / report.seconds
    outcome = f"{report.described} described, {report.prompt_filtered} prompt-filtered"
    failed = sum(report.failed.values())
    return (
        f"{label:<28} {report.seconds:7.2f} s  {rate:7.1f} episodes/s"
        f"  requests {report.requests:5d}  cache hits {report.cache_hits:5d}"
        f"  ({outcome}, {failed} failed)"
    )


def local(episodes: list[Episode], base_url: str, tmp: Path, args: argparse.Namespace) -> None:
    serial = describe(episodes, base_url, tmp / "c1", 1)
    print(line("concurrency 1, cold cache", serial, len(episodes)))
    parallel = describe(episodes, base_url, tmp / "cN", args.concurrency)
    print(line(f"concurrency {args.concurrency}, cold cache", parallel, len(episodes)))
    warm = describe(episodes, base_url, tmp / "cN", args.concurrency)
    print(line(f"concurrency {args.concurrency}, warm cache", warm, len(episodes)))
    speedup = serial.seconds / parallel.seconds
    target = WARM_TARGET_S_PER_1000 * len(episodes) / 1000
    verdict = "PASS" if warm.seconds < target and warm.requests == 0 else "MISS"
    print(f"  speed-up at concurrency {args.concurrency}: {speedup:.2f}x over concurrency 1")
    print(
        f"  warm-cache rerun: {warm.seconds:.2f} s for {len(episodes)} episodes,"
        f" {warm.requests} requests; target < {target:.1f} s: {verdict}"
        f" ({serial.seconds / warm.seconds:.0f}x faster than the cold serial run)"
    )


# one answer both stages accept: each parser takes its keys and ignores the others
BOTH_STAGES = json.dumps(
    {
        "description": "Adds the colon the def line lacked.",
        "problem": "The def line lacks a colon.",
        "error_kind": "syntax error",
        "lazy": ["fix the syntax error in the module"],
        "descriptive": ["The module does not parse any more; make it parse again."],
    }
)


def latency(episodes: list[Episode], base_url: str, tmp: Path, args: argparse.Namespace) -> None:
    print(f"\n{len(episodes)} episodes, every answer after {args.latency_ms:g} ms (proxy):")
    with FaultProxy(base_url) as proxy:
        proxy.always(reply(BOTH_STAGES, after=args.latency_ms / 1000))
        serial = describe(episodes, proxy.base_url, tmp / "l1", 1)
        print(line("concurrency 1", serial, len(episodes)))
        parallel = describe(episodes, proxy.base_url, tmp / "lN", args.concurrency)
        print(line(f"concurrency {args.concurrency}", parallel, len(episodes)))
    print(
        f"  speed-up at concurrency {args.concurrency}: {serial.seconds / parallel.seconds:.2f}x"
        f" (ideal {args.concurrency}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--latency-episodes", type=int, default=300)
    parser.add_argument("--skip-local", action="store_true", help="only the latency run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="redgreen-bench-describe-"))
    try:
        data = write_kept_episodes(tmp / "data", args.episodes)
        pipeline.run(data, tmp / "mined")
        episodes = read_episodes(tmp / "mined")
        assert sum(e.kept for e in episodes) == args.episodes, "every episode should be kept"
        binary = llama_server_binary()
        model = write_tiny_model(tmp / "tiny.gguf")
        print(
            f"{args.episodes} kept episodes; llama-server with the tiny model,"
            f" {os.cpu_count()} CPU(s)"
        )
        with LlamaServer(binary, model, parallel=max(args.concurrency, 1)) as server:
            if not args.skip_local:
                local(episodes, server.base_url, tmp, args)
            latency(episodes[: args.latency_episodes], server.base_url, tmp, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
