"""The clients that make the load: wrk (small requests at a fixed concurrency), curl (one
large transfer), a boto3 thread pool; and what they measure on the server: CPU seconds per
operation and peak resident memory."""

from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.compare.targets import cpu_seconds, cpu_times, rss_mib
from tests.debian_packages import ensure_installed

# PUTs go to PUT_KEYS keys in turn, as a build's artifacts do (one key would queue every
# PUT behind its per-key lock), and each body differs (the wrk thread's number and a
# counter up front): a store that keeps one copy of identical bytes must still write each.
PUT_KEYS = 512
PUT_SCRIPT = """
local paths = {{ {paths} }}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local filler = string.rep("x", {size})
local counter = 0
wrk.headers["Content-Type"] = "application/octet-stream"
function request()
  counter = counter + 1
  local head = id .. "-" .. counter .. " "
  local path = paths[(counter * 7 + id) % #paths + 1]
  return wrk.format("PUT", path, nil, head .. string.sub(filler, #head + 1))
end
"""


@dataclass
class Rate:
    """Operations over time, summed over the rounds of one target."""

    operations: int = 0
    seconds: float = 0.0
    errors: int = 0
    cpu: float = 0.0  # the server's CPU seconds meanwhile
    system: float = 0.0  # the part of `cpu` spent in the kernel
    latencies_ms: list[float] = field(default_factory=list)  # per round (wrk) or per op

    def add(
        self, operations: int, seconds: float, errors: int, cpu: float, system: float = 0.0
    ) -> None:
        self.operations += operations
        self.seconds += seconds
        self.errors += errors
        self.cpu += cpu
        self.system += system

    def as_dict(self) -> dict[str, float]:
        ops = self.operations / self.seconds if self.seconds else 0.0
        values = sorted(self.latencies_ms)
        return {
            "ops_per_s": round(ops, 1),
            "p50_ms": round(_percentile(values, 50), 2),
            "p99_ms": round(_percentile(values, 99), 2),
            "server_cpu_us_per_op": round(1e6 * self.cpu / max(self.operations, 1), 1),
            "server_system_us_per_op": round(1e6 * self.system / max(self.operations, 1), 1),
            "errors": self.errors,
        }


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def wrk(
    urls: Sequence[str],
    rate: Rate,
    pid: int,
    seconds: float,
    connections: int,
    put_size: int,
    workdir: Path,
) -> None:
    """One round of wrk: GETs of `urls[0]`, or (`put_size` > 0) PUTs of `put_size` bytes to
    each of `urls` in turn; adds to `rate`."""
    command = [
        ensure_installed("wrk"),
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
    ]
    url = urls[0]
    if put_size:
        script = workdir / f"put-{put_size}.lua"
        paths = ", ".join(f"[[{_path_of(u)}]]" for u in urls)
        script.write_text(PUT_SCRIPT.format(size=put_size, paths=paths))
        command += ["-s", str(script)]
    user0, system0 = cpu_times(pid) if pid else (0.0, 0.0)
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60)
    user1, system1 = cpu_times(pid) if pid else (0.0, 0.0)
    cpu, system = user1 - user0 + system1 - system0, system1 - system0
    out = done.stdout
    requests = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if done.returncode != 0 or requests is None:
        raise RuntimeError(f"wrk failed: {done.stderr or out}")
    took = float(requests.group(2)) * (1 if requests.group(3) == "s" else 0.001)
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(failed.group(1)) if failed else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rate.add(int(requests.group(1)), took, errors, cpu, system)
    for percent in (50, 99):
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)", out, re.MULTILINE)
        if found:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
            rate.latencies_ms.append(float(found.group(1)) * scale)


def pool(call: Callable[[int], None], rate: Rate, pid: int, seconds: float, threads: int) -> None:
    """`threads` threads calling `call(n)` for `seconds`: adds each call's latency."""
    stop_at = time.perf_counter() + seconds
    counter = iter(range(1 << 62))
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]

    def worker() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                n = next(counter)
            started = time.perf_counter()
            try:
                call(n)
            except Exception:
                errors[0] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    before = cpu_seconds(pid) if pid else 0.0
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        for future in [executor.submit(worker) for _ in range(threads)]:
            future.result()
    took = time.perf_counter() - started
    rate.add(len(latencies), took, errors[0], cpu_seconds(pid) - before if pid else 0.0)
    rate.latencies_ms.extend(latencies)


def curl_seconds(arguments: list[str]) -> float:
    """One curl transfer; its total time (it must succeed)."""
    command = ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"curl {arguments[-1][:80]}: {done.stderr.strip()}")
    return float(done.stdout)


@contextmanager
def peak_rss(pid: int) -> Iterator[list[float]]:
    """The process's resident set, sampled every 50 ms while the block runs: [peak MiB]."""
    peak = [rss_mib(pid) if pid else 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            try:
                peak[0] = max(peak[0], rss_mib(pid))
            except (FileNotFoundError, ProcessLookupError):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    if pid:
        sampler.start()
    try:
        yield peak
    finally:
        done.set()
        if pid:
            sampler.join()


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
