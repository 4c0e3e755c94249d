"""Benchmark secret redaction: the keyword prefilter against every pattern on everything.

Builds a corpus of ordinary source code (the standard library's ``.py`` files,
``--mb`` megabytes of them) and a copy with fake secrets from
``tests/secrets_corpus.py`` sprinkled in, then times

* ``redact_bytes``: a few anchored prefilter passes, the families' patterns only
  around their hits, and
* the naive baseline: the same patterns, each over the whole text
  (``redact_bytes(data, prefilter=False)``),

checks that both give the same output, and prints MB/s for each, their ratio,
and the redactions made in the ordinary code (false positives, with examples).
Run it with::

    uv run python bench/bench_redact.py [--mb 24] [--repeat 3] [--naive-mb 24]
"""

from __future__ import annotations

import argparse
import random
import sys
import sysconfig
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from snapshotter.redact import find_secrets, redact_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.secrets_corpus
from tests.secrets_corpus import SECRETS

MB = 1_000_000


def stdlib_corpus(megabytes: float) -> tuple[bytes, int]:
    """The standard library's Python files, in a fixed order, up to ``megabytes``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: list[bytes] = []
    size = 0
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts or size >= megabytes * MB:
            continue
        try:
            parts.append(path.read_bytes())
        except OSError:
            continue
        size += len(parts[-1])
    return b"".join(parts)[: int(megabytes * MB)], len(parts)


def with_secrets(code: bytes, every: int, seed: int) -> tuple[bytes, int]:
    """``code`` with a planted snippet after a line break about every ``every`` bytes."""
    rng = random.Random(seed)
    snippets = [p.encode() for s in SECRETS for p in s.planted()]
    out: list[bytes] = []
    pos = planted = 0
    while pos < len(code):
        cut = code.find(b"\n", pos + rng.randrange(every // 2, every * 3 // 2))
        cut = len(code) if cut < 0 else cut + 1
        out.append(code[pos:cut])
        if cut < len(code):
            out.append(rng.choice(snippets))
            planted += 1
        pos = cut
    return b"".join(out), planted


def best_time(run: Callable[[], bytes], repeat: int) -> tuple[float, bytes]:
    best, result = float("inf"), b""
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=24, help="size of the code corpus (MB)")
    parser.add_argument("--naive-mb", type=float, default=None, help="baseline corpus size")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--every", type=int, default=50_000, help="bytes between secrets")
    parser.add_argument("--examples", type=int, default=8, help="false positives to show")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    code, files = stdlib_corpus(args.mb)
    seeded, planted = with_secrets(code, args.every, args.seed)
    naive_code = code[: int((args.naive_mb or args.mb) * MB)]
    print(f"corpus: {len(code) / MB:.1f} MB of standard library code ({files} files)")
    print(f"        + {planted} fake secrets planted: {len(seeded) / MB:.1f} MB")

    fast, fast_out = best_time(lambda: redact_bytes(code), args.repeat)
    fast_seeded, seeded_out = best_time(lambda: redact_bytes(seeded), args.repeat)
    slow, slow_out = best_time(lambda: redact_bytes(naive_code, prefilter=False), 1)
    same = slow_out == (fast_out if naive_code is code else redact_bytes(naive_code))

    fast_mbs = len(code) / MB / fast
    slow_mbs = len(naive_code) / MB / slow
    print(f"prefiltered  ordinary code:  {fast_mbs:8.1f} MB/s  ({fast * 1000:.0f} ms)")
    print(f"prefiltered  with secrets:   {len(seeded) / MB / fast_seeded:8.1f} MB/s")
    print(
        f"naive        ordinary code:  {slow_mbs:8.1f} MB/s  ({slow:.1f} s on "
        f"{len(naive_code) / MB:.1f} MB; every pattern over the whole text)"
    )
    print(f"ratio: {fast_mbs / slow_mbs:.0f}x   same output: {same}")

    markers = seeded_out.count(b"[REDACTED:")
    leaked = [s.name for s in SECRETS for n in s.needles if n.encode() in seeded_out]
    print(f"secrets corpus: {markers} markers for {planted} planted snippets, leaked: {leaked}")

    findings = find_secrets(code)
    kinds = Counter(f.kind for f in findings)
    rate = len(findings) / (len(code) / MB)
    print(
        f"false positives in ordinary code: {len(findings)} "
        f"({rate:.1f} per MB) {dict(kinds.most_common())}"
    )
    for f in findings[: args.examples]:
        start = code.rfind(b"\n", 0, f.start) + 1
        end = code.find(b"\n", f.end)
        print("   ", code[start:end].strip()[:100].decode(errors="replace"))


if __name__ == "__main__":
    main()
