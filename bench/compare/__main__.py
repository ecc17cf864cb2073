"""s3facade measured side by side with moto (the Python peer), nginx (this machine's HTTP
limit) and, through its upstream backend, moto and a Ceph RGW accessed directly. Every
target is started here on loopback; workloads alternate the targets round after round;
figures are reported as ratios of targets measured in the same run.

    make bench        (= .venv/bin/python -m bench.compare)
    .venv/bin/python -m bench.compare --quick          # small sizes, short rounds
    .venv/bin/python -m bench.compare --json out.json --only small,listing

Prints a Markdown table (the README's) and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.compare import workloads
from bench.compare.profile import summary
from bench.compare.report import render, targets_met
from bench.compare.targets import moto_server, nginx, s3facade
from bench.upstream_throughput import bench_store, moto, rgw

MiB = 1 << 20
WORKLOADS = ("small", "large", "listing", "big", "log", "upstream")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 round of 3 s")
    parser.add_argument("--rounds", type=int, help="rounds per small workload (3; quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per round (5; quick 3)")
    parser.add_argument("--large-mib", type=int, help="the large object (1024; quick 64)")
    parser.add_argument("--big-mib", type=int, help="the RSS upload (5120; quick 256)")
    parser.add_argument("--keys", type=int, help="listing and delete (10000; quick 2000)")
    parser.add_argument("--upstreams", default="moto,rgw", help="moto,rgw")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=",".join(WORKLOADS))
    parser.add_argument("--json", type=Path, default=Path("bench-compare.json"))
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the server (first round of small, large, listing; upstream) into DIR",
    )
    args = parser.parse_args()
    defaults = {"rounds": (3, 1), "seconds": (5, 3), "large_mib": (1024, 64)}
    defaults |= {"big_mib": (5120, 256), "keys": (10_000, 2000)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def large_file(workdir: Path, size: int) -> Path:
    path = workdir / "large.bin"
    block = os.urandom(64 * MiB)
    with path.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)  # incompressible; repeats are fine (no dedup below the object)
        f.write(block[: size % len(block)])
    return path


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = Path("/proc/meminfo").read_text().split()[1]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory) / 1024 / 1024),
        "python": platform.python_version(),
    }


def main() -> int:
    args = arguments()
    only = set(args.only.split(","))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    results: dict[str, Any] = {"machine": machine(), "settings": settings}
    with tempfile.TemporaryDirectory(prefix="s3facade-compare-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        facade = stack.enter_context(s3facade(workdir))
        peer = stack.enter_context(moto_server(workdir))
        limit = stack.enter_context(nginx(workdir))
        everyone, s3_targets = [facade, peer, limit], [facade, peer]
        workloads.prepare(everyone, workdir)
        print(f"targets up: {', '.join(t.name for t in everyone)}", flush=True)
        if "small" in only:
            for method in ("GET", "PUT"):
                traced = args.profile / f"{method.lower()}.txt" if args.profile else None
                results[f"small_{method.lower()}_wrk"] = workloads.small_wrk(
                    everyone, method, args.rounds, args.seconds, workdir, traced
                )
                results[f"small_{method.lower()}_boto3"] = workloads.small_pool(
                    s3_targets, method, args.rounds, args.seconds
                )
                print(f"small {method}: done", flush=True)
        if "large" in only:
            path = large_file(workdir, args.large_mib * MiB)
            results["large_curl"] = workloads.large_curl(everyone, path, 1, args.profile)
            results["large_boto3"] = workloads.large_boto3(s3_targets, path, 1)
            path.unlink()
            print("large: done", flush=True)
        if "listing" in only:
            results["listing"] = workloads.listing_and_delete(s3_targets, args.keys, args.profile)
            print("listing: done", flush=True)
        if "big" in only:
            results["big_upload"] = workloads.big_upload_rss(facade, args.big_mib * MiB, workdir)
            print("big upload: done", flush=True)
        if "log" in only:
            results["log_events"] = workloads.log_events(32, 30_000)
            print("log: done", flush=True)
        stack.close()  # the upstream comparisons start their own servers
        if "upstream" in only:
            path = large_file(workdir, args.large_mib * MiB)
            stores = {"moto": moto, "rgw": rgw}
            results["upstream"] = {}
            for name in args.upstreams.split(","):
                try:
                    with stores[name](workdir) as store:
                        measured = bench_store(
                            name, store, path, args.large_mib * MiB, workdir, args.profile
                        )
                except RuntimeError as exc:
                    measured = {"skipped": str(exc)}
                results["upstream"][name] = measured
    results["targets"] = targets_met(results)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(render(results))
    if args.profile:  # every profile taken, summarised, also in the JSON
        results["profiles"] = {}
        for traced in sorted(args.profile.glob("*.txt")):
            results["profiles"][traced.stem] = summary(traced)
            for row in results["profiles"][traced.stem]:
                shares = f"{row['inclusive_pct']:5.1f}% {row['self_pct']:5.1f}%"
                print(f"  {traced.stem} {shares}  {row['function']}")
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\n(figures: {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
