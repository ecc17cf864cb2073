"""The comparison benchmark's verdicts (bench/compare/report.py): a target is met or not by
the ratio of figures measured in the same run, and unmeasured ones say so."""

from __future__ import annotations

from typing import Any

from bench.compare.report import render, targets_met


def results(facade_get: float, moto_get: float, cpu: float) -> dict[str, Any]:
    small = {"ops_per_s": facade_get, "p50_ms": 1.0, "p99_ms": 2.0, "server_cpu_us_per_op": cpu}
    return {
        "machine": {"date": "2026-11-29", "cpu": "x", "cores": 2, "memory_gib": 24, "python": "3"},
        "settings": {"large_mib": 1024, "keys": 10_000},
        "small_get_wrk": {"s3facade": small, "moto": {**small, "ops_per_s": moto_get}},
        "listing": {
            "s3facade": {"list_s": 0.5, "list_delimiter_s": 0.5, "delete_objects_s": 2.0},
            "moto": {"list_s": 6.0, "list_delimiter_s": 6.0, "delete_objects_s": 1.0},
        },
    }


def verdicts(measured: dict[str, Any]) -> dict[str, Any]:
    return {row["target"]: (row["measured"], row["met"]) for row in targets_met(measured)}


def test_targets_are_ratios_within_one_run() -> None:
    met = verdicts(results(facade_get=5000, moto_get=400, cpu=120))
    assert met["4 KiB GET (wrk c=32), x moto"] == (12.5, True)
    assert met["server CPU per 4 KiB GET, µs"] == (120, True)
    assert met["listing of the keys, x moto"] == (12.0, True)
    assert met["DeleteObjects of the keys, x moto"] == (0.5, False)
    assert met["over rgw: GET, one stream, x direct"] == (None, None)  # not measured
    missed = verdicts(results(facade_get=1000, moto_get=400, cpu=900))
    assert missed["4 KiB GET (wrk c=32), x moto"] == (2.5, False)
    assert missed["server CPU per 4 KiB GET, µs"] == (900, False)


def test_the_table_names_every_target_and_its_verdict() -> None:
    measured = results(facade_get=1000, moto_get=400, cpu=900)
    measured["targets"] = targets_met(measured)
    table = render(measured)
    assert "| 4 KiB GET, wrk c=32, ops/s | 1000 | 400 | - | 2.5 | - |" in table
    assert "| server CPU per 4 KiB GET, µs | 900 | <= 150 | **no** |" in table
    assert table.count("not measured") >= 6
