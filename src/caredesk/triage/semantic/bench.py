"""Print the semantic model's speed and memory on this machine: ``python -m caredesk.triage.semantic.bench``.

Texts are the shipped triage seed examples (short social posts), repeated to ``--texts``. For a one-core figure
run it under ``taskset -c 0``. Measure each runtime in its own process (``--runtime``): peak RSS is per process.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from importlib import resources

from caredesk.triage.semantic.encoder import load
from caredesk.triage.semantic.runtimes import NUMPY, ONNXRUNTIME, usable_cpus

VARIANTS = {ONNXRUNTIME: (ONNXRUNTIME, False), f"{ONNXRUNTIME}-int8": (ONNXRUNTIME, True), NUMPY: (NUMPY, False)}


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _seed_texts() -> list[str]:
    lines = resources.files("caredesk.triage").joinpath("seed_examples.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runtime", choices=list(VARIANTS), action="append", help="default: all")
    parser.add_argument("--texts", type=int, default=1000, help="how many texts to embed in the batched run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="compute threads; 0: every usable CPU")
    parser.add_argument("--single", type=int, default=200, help="how many one-text calls to time")
    args = parser.parse_args(argv)
    seeds = _seed_texts()
    texts = (seeds * (args.texts // len(seeds) + 1))[: args.texts]
    threads = args.threads or usable_cpus()
    print(f"rss before loading: {_rss_mib():.0f} MiB")
    for name in args.runtime or list(VARIANTS):
        runtime, int8 = VARIANTS[name]
        started = time.perf_counter()
        encoder = load(runtime=runtime, threads=threads, int8=int8)
        loaded = time.perf_counter() - started
        encoder.embed(texts[:64])  # warm-up
        started = time.perf_counter()
        encoder.embed(texts, batch_size=args.batch_size)
        batched = time.perf_counter() - started
        latencies = []
        for text in seeds[: args.single]:
            started = time.perf_counter()
            encoder.embed([text])
            latencies.append(time.perf_counter() - started)
        latencies.sort()
        print(
            f"{name} ({encoder.runtime.version}, {threads} thread(s)): load {loaded:.2f} s; "
            f"batched {len(texts) / batched:.0f} texts/s (batch {args.batch_size}); "
            f"one text: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.1f} ms; "
            f"rss {_rss_mib():.0f} MiB, peak {_peak_rss_mib():.0f} MiB"
        )


if __name__ == "__main__":
    main()
