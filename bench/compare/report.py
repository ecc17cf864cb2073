"""The comparison's figures as the README's Markdown table, and the performance issue's
targets: each as a measured ratio (or figure) against its goal, met or not."""

from __future__ import annotations

from typing import Any


def _get(results: dict[str, Any], *path: str) -> Any:
    value: Any = results
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return None
        value = value[step]
    return value


def _ratio(a: Any, b: Any) -> float | None:
    return (
        round(a / b, 2) if isinstance(a, int | float) and isinstance(b, int | float) and b else None
    )


Path = tuple[str, ...]
# (target, figure (or numerator), denominator or None, "<=" or ">=", goal)
GOALS: list[tuple[str, Path, Path | None, str, float]] = [
    (
        "server CPU per 4 KiB GET, µs",
        ("small_get_wrk", "s3facade", "server_cpu_us_per_op"),
        None,
        "<=",
        150,
    ),
    (
        "server CPU per durable 4 KiB PUT, µs",
        ("small_put_wrk", "s3facade", "server_cpu_us_per_op"),
        None,
        "<=",
        400,
    ),
    (
        "4 KiB GET (wrk c=32), x moto",
        ("small_get_wrk", "s3facade", "ops_per_s"),
        ("small_get_wrk", "moto", "ops_per_s"),
        ">=",
        10,
    ),
    (
        "4 KiB durable PUT (wrk c=32), x moto",
        ("small_put_wrk", "s3facade", "ops_per_s"),
        ("small_put_wrk", "moto", "ops_per_s"),
        ">=",
        5,
    ),
    (
        "DeleteObjects of the keys, x moto",
        ("listing", "moto", "delete_objects_s"),
        ("listing", "s3facade", "delete_objects_s"),
        ">=",
        10,
    ),
    (
        "listing of the keys, x moto",
        ("listing", "moto", "list_s"),
        ("listing", "s3facade", "list_s"),
        ">=",
        10,
    ),
    (
        "large PUT (curl), x nginx dav PUT",
        ("large_curl", "s3facade", "put_mb_s"),
        ("large_curl", "nginx", "put_mb_s"),
        ">=",
        0.35,
    ),
    (
        "large PUT (curl), x moto",
        ("large_curl", "s3facade", "put_mb_s"),
        ("large_curl", "moto", "put_mb_s"),
        ">=",
        2,
    ),
    (
        "large GET (curl), x nginx",
        ("large_curl", "s3facade", "get_mb_s"),
        ("large_curl", "nginx", "get_mb_s"),
        ">=",
        0.8,
    ),
    ("peak RSS during the big upload, MiB", ("big_upload", "peak_rss_mib"), None, "<=", 200),
] + [
    (
        f"over {store}: {operation}, x direct",
        ("upstream", store, "operations", operation, "ratio"),
        None,
        ">=",
        0.8,
    )
    for store in ("moto", "rgw")
    for operation in ("PUT, one stream", "PUT, multipart", "GET, one stream")
]


def targets_met(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, figure, denominator, sense, goal in GOALS:
        value = _get(results, *figure)
        if denominator is not None:
            value = _ratio(value, _get(results, *denominator))
        met = None if value is None else value <= goal if sense == "<=" else value >= goal
        rows.append({"target": name, "measured": value, "goal": f"{sense} {goal}", "met": met})
    return rows


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join("-" if c is None else str(c) for c in cells) + " |"


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}; client and servers share the cores.",
        "",
        _row(["workload", "s3facade", "moto", "nginx", "s3facade / moto", "s3facade / nginx"]),
        _row(["---"] * 6),
    ]
    for key, title in (
        ("small_get_wrk", "4 KiB GET, wrk c=32"),
        ("small_put_wrk", "4 KiB PUT, wrk c=32"),
    ):
        for field, unit in (
            ("ops_per_s", "ops/s"),
            ("p99_ms", "p99 ms"),
            ("server_cpu_us_per_op", "server CPU µs/op"),
        ):
            row = results.get(key, {})
            f, p, n = (_get(row, t, field) for t in ("s3facade", "moto", "nginx"))
            lines.append(_row([f"{title}, {unit}", f, p, n, _ratio(f, p), _ratio(f, n)]))
    for key, title in (
        ("small_get_boto3", "4 KiB GET, boto3 32 threads"),
        ("small_put_boto3", "4 KiB PUT, boto3 32 threads"),
    ):
        row = results.get(key, {})
        f, p = _get(row, "s3facade", "ops_per_s"), _get(row, "moto", "ops_per_s")
        lines.append(_row([f"{title}, ops/s", f, p, None, _ratio(f, p), None]))
    size = results["settings"]["large_mib"]
    for field, title in (
        ("put_mb_s", "PUT, curl, MB/s"),
        ("get_mb_s", "GET, curl, MB/s"),
        ("peak_rss_mib", "peak RSS, MiB"),
    ):
        row = results.get("large_curl", {})
        f, p, n = (_get(row, t, field) for t in ("s3facade", "moto", "nginx"))
        lines.append(_row([f"{size} MiB {title}", f, p, n, _ratio(f, p), _ratio(f, n)]))
    for field, title in (("upload_mb_s", "upload_file"), ("download_mb_s", "download_fileobj")):
        f, p = (_get(results, "large_boto3", t, field) for t in ("s3facade", "moto"))
        lines.append(_row([f"{size} MiB boto3 {title}, MB/s", f, p, None, _ratio(f, p), None]))
    keys = results["settings"]["keys"]
    for field, title in (
        ("list_s", "listing, paginated"),
        ("list_delimiter_s", "listing, delimiter"),
        ("delete_objects_s", "DeleteObjects"),
    ):
        f, p = (_get(results, "listing", t, field) for t in ("s3facade", "moto"))
        lines.append(
            _row(
                [
                    f"{keys} keys: {title}, s (ratio: moto / s3facade)",
                    f,
                    p,
                    None,
                    _ratio(p, f),
                    None,
                ]
            )
        )
    big = results.get("big_upload", {})
    lines.append(
        _row(
            [
                f"{big.get('size_mib')} MiB upload: peak RSS, MiB "
                f"(before it: {big.get('rss_before_mib', '-')})",
                big.get("peak_rss_mib"),
                None,
                None,
                None,
                None,
            ]
        )
    )
    events = results.get("log_events", {})
    lines.append(
        _row(
            [
                "log events/s, 32 writers (group commit; one per event)",
                events.get("group"),
                events.get("one_per_event"),
                None,
                _ratio(events.get("group"), events.get("one_per_event")),
                None,
            ]
        )
    )
    lines += [
        "",
        _row(["through the upstream backend, MiB/s", "direct", "s3facade", "s3facade / direct"]),
        _row(["---"] * 4),
    ]
    for store, measured in results.get("upstream", {}).items():
        for operation, row in measured.get("operations", {}).items():
            lines.append(
                _row(
                    [
                        f"{store}: {size} MiB {operation}",
                        row["direct_mib_s"],
                        row["facade_mib_s"],
                        row["ratio"],
                    ]
                )
            )
        if "skipped" in measured:
            lines.append(_row([f"{store}: skipped ({measured['skipped'][:60]})", None, None, None]))
    lines += ["", _row(["target", "measured", "goal", "met"]), _row(["---"] * 4)]
    for target in results.get("targets", []):
        met = {True: "yes", False: "**no**", None: "not measured"}[target["met"]]
        lines.append(_row([target["target"], target["measured"], target["goal"], met]))
    return "\n".join(lines)
