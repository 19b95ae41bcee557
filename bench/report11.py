"""Issue 11's results (`issue11-*.json`) as the generated block of docs/benchmarks.md.

Tables per scenario, a targets table with the verdict of each of issue 11's "How we know"
targets, and the push cost as a text chart (so the document needs nothing to draw it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import SIDE_LABELS, markers

BLOCK = "issue11"
PREFIX = "issue11-"
LABELS = {**SIDE_LABELS, "sdk": "Microsoft's SDK", "ours": "Ours"}


def load(results_dir: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(results_dir.glob(f"{PREFIX}*.json")):
        found[path.stem[len(PREFIX) :]] = json.loads(path.read_text(encoding="utf-8"))
    return found


def _f(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return fmt.format(value)
    return str(value)


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else "met" if ok else "**missed**"


def _push_runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in data.get("runs", []) if "push" in r]


def push_table(data: dict[str, Any]) -> str:
    lines = [
        "| manifests | push run: requests | of which reads / lists / auth | seconds | plan s "
        "| first run: requests | first run: seconds | first run: deleted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data.get("runs", []):
        if "error" in r:
            lines.append(f"| {r['manifests']:,} | error: {r['error'][:200]} |||||||")
            continue
        p, first = r["push"], r["first"]
        k = p["requests"]
        lines.append(
            f"| {r['manifests']:,} | {p['requests_total']:,} "
            f"| {k.get('read', 0):,} / {k.get('list', 0):,} / {k.get('auth', 0):,} "
            f"| {p['wall_s']:.2f} | {p['plan_s']:.3f} | {first['requests_total']:,} "
            f"| {first['wall_s']:.1f} | {_f(first['summary'].get('deleted'))} |"
        )
    return "\n".join(lines)


def push_chart(data: dict[str, Any], width: int = 50) -> str:
    """Requests of the push run per repository size, as bars on a log scale."""
    import math

    runs = _push_runs(data)
    if not runs:
        return ""
    top = max(r["push"]["requests_total"] for r in runs)
    scale = math.log10(max(top, 25))  # the 25-request mark stays on the chart
    rows = ["```", "push run: registry requests (log scale; target <= 15 at 500, <= 25 at 50,000)"]
    for r in runs:
        n = r["push"]["requests_total"]
        bar = "#" * max(1, round(width * math.log10(max(n, 1)) / scale)) if n > 1 else "#"
        rows.append(f"{r['manifests']:>7,} manifests | {bar} {n:,}")
    target = round(width * math.log10(25) / scale)
    rows.append(f"{'':>17} | {' ' * (target - 1)}^ 25 requests")
    rows.append("```")
    return "\n".join(rows)


def cli_table(data: dict[str, Any]) -> str:
    lines = ["| run | exit | requests | by kind | seconds |", "|---|---|---|---|---|"]
    for n, r in enumerate(data.get("runs", []), 1):
        kinds = ", ".join(f"{k} {v}" for k, v in r["requests"].items())
        lines.append(
            f"| {n} | {r['exit']} | {r['requests_total']:,} | {kinds} | {r['wall_s']:.2f} |"
        )
    return "\n".join(lines)


def sides_table(data: dict[str, Any], *, concurrency: bool = False) -> str:
    limit = data.get("settings", {}).get("write_limit_per_s")
    head = (
        "| side | wall s | deleted | sustained deletes/s | of delete limit | requests "
        "| 429s | % 429 | failed | final state exact |"
    )
    lines = [head + (" effective concurrency |" if concurrency else ""), ""]
    lines[1] = "|" + "---|" * (10 + int(concurrency))
    for key in ("quickstart", "careful", "ours"):
        r = data.get("sides", {}).get(key)
        if r is None:
            continue
        total = r.get("requests_total")
        share = r.get("throttled_429", 0) / total if total else None
        rate = r.get("sustained_deletes_per_s")
        row = (
            f"| {LABELS[key]} | {_f(r.get('wall_s'))} | {_f(r.get('deleted'))} "
            f"| {_f(rate, '{:.1f}')} | {_pct(rate / limit if rate and limit else None)} "
            f"| {_f(total)} | {_f(r.get('throttled_429'))} | {_pct(share)} "
            f"| {_f(r.get('failed'))} | {_f(r.get('state_correct'))} |"
        )
        if concurrency:
            row += f" {_f(r.get('effective_concurrency'), '{:.1f}')} |"
        lines.append(row + (f" {r['error'][:150]}" if r.get("error") else ""))
    return "\n".join(lines)


def fleet_table(data: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| workers | messages handled / left | wall s | deleted | sustained deletes/s "
            "| of the identity's delete limit | requests | % 429 | final state exact "
            "| each worker's share |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {data.get('workers')} | {_f(data.get('messages_handled'))} / "
            f"{_f(data.get('messages_left'))} | {_f(data.get('wall_s'))} "
            f"| {_f(data.get('deleted'))} | {_f(data.get('sustained_deletes_per_s'), '{:.1f}')} "
            f"| {_pct(data.get('limit_utilisation'))} | {_f(data.get('requests_total'))} "
            f"| {_pct(data.get('throttled_fraction'))} | {_f(data.get('state_correct'))} "
            f"| `{json.dumps(data.get('share_env', {}))}` |",
        ]
    )


def cpu_table(data: dict[str, Any]) -> str:
    lines = [
        "| client | operations | requests | CPU s | CPU ms per request | CPU ms per operation |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("sdk", "ours"):
        r = data.get("sides", {}).get(key)
        if r is None or "error" in r:
            continue
        lines.append(
            f"| {LABELS[key]} | {r['operations']:,} | {r['requests']:,} | {r['cpu_s']:.2f} "
            f"| {r['cpu_ms_per_request']:.2f} | {r['cpu_ms_per_operation']:.2f} |"
        )
    return "\n".join(lines)


def _get(data: dict[str, Any] | None, *path: Any) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict | list):
            return None
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def targets(found: dict[str, dict[str, Any]]) -> str:
    rows: list[tuple[str, str, bool | None]] = []
    runs = {r["manifests"]: r for r in _push_runs(found.get("push-cost", {}))}
    if runs:
        smallest, largest = min(runs), max(runs)
        small, large = runs[smallest]["push"], runs[largest]["push"]
        rows.append(
            (
                f"push run at {smallest:,} manifests: <= 15 requests",
                f"{small['requests_total']:,}",
                small["requests_total"] <= 15 if smallest <= 500 else None,
            )
        )
        rows.append(
            (
                f"push run at {largest:,} manifests: <= 25 requests",
                f"{large['requests_total']:,}",
                large["requests_total"] <= 25 if largest >= 50_000 else None,
            )
        )
        rows.append(
            (
                f"plan time of the {largest:,}-manifest push run < 1 s",
                f"{large['plan_s']:.3f} s (run {large['wall_s']:.2f} s)",
                large["plan_s"] < 1 if largest >= 50_000 else None,
            )
        )
    second = _get(found.get("cli-repeat"), "runs", 1, "requests_total")
    if second is not None:
        rows.append(
            ("CLI: second `plan --repository R` <= 10 requests", f"{second:,}", second <= 10)
        )
    ceiling = _get(found.get("delete-ceiling"), "sides", "ours")
    if ceiling:
        limit = found["delete-ceiling"]["settings"]["write_limit_per_s"]
        rate = ceiling.get("sustained_deletes_per_s")
        share = (
            ceiling.get("throttled_429", 0) / ceiling["requests_total"]
            if ceiling.get("requests_total")
            else None
        )
        use = rate / limit if rate else None
        rows.append(
            ("delete ceiling: >= 90 % of the delete limit", _pct(use), use >= 0.9 if use else None)
        )
        rows.append(
            (
                "delete ceiling: zero failed operations",
                _f(ceiling.get("failed")),
                ceiling.get("failed") == 0,
            )
        )
        rows.append(
            (
                "delete ceiling: <= 1 % of requests answered 429",
                _pct(share),
                share <= 0.01 if share is not None else None,
            )
        )
        rows.append(
            (
                "delete ceiling: exact final state",
                _f(ceiling.get("state_correct")),
                ceiling.get("state_correct"),
            )
        )
    fl = found.get("fleet")
    if fl and "error" not in fl:
        use, share = fl.get("limit_utilisation"), fl.get("throttled_fraction")
        rows.append(
            (
                "fleet: >= 85 % of the per-identity delete limit",
                _pct(use),
                use >= 0.85 if use else False,
            )
        )
        rows.append(
            ("fleet: <= 2 % 429s", _pct(share), share <= 0.02 if share is not None else None)
        )
        rows.append(
            (
                "fleet: nothing missed (exact final state, queue empty)",
                _f(fl.get("state_correct")),
                bool(fl.get("state_correct")) and not fl.get("messages_left"),
            )
        )
    lb = found.get("latency-bound", {}).get("sides", {})
    if lb.get("quickstart", {}).get("wall_s") and lb.get("ours", {}).get("wall_s"):
        ratio = lb["quickstart"]["wall_s"] / lb["ours"]["wall_s"]
        conc = lb["ours"].get("effective_concurrency")
        rows.append(
            (
                "latency-bound: >= 10x the quickstart's wall time",
                f"{ratio:.1f}x (effective concurrency {_f(conc, '{:.1f}')})",
                ratio >= 10,
            )
        )
    c = found.get("cpu", {}).get("sides", {})
    if "cpu_ms_per_request" in c.get("ours", {}) and "cpu_ms_per_request" in c.get("sdk", {}):
        ours, sdk = c["ours"]["cpu_ms_per_request"], c["sdk"]["cpu_ms_per_request"]
        rows.append(
            (
                "client CPU per request <= the SDK's",
                f"{ours:.2f} ms vs {sdk:.2f} ms ({ours / sdk:.2f}x)",
                ours <= sdk,
            )
        )
    lines = ["| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {_verdict(ok)} |" for t, m, ok in rows]
    return "\n".join(lines)


def _errors(found: dict[str, dict[str, Any]]) -> list[str]:
    return [
        f"- `{name}` failed: {data['error'][:400]}"
        for name, data in found.items()
        if data.get("error")
    ]


def render(found: dict[str, dict[str, Any]], meta: str) -> str:
    begin, end = markers(BLOCK)
    parts = [begin, "", meta, "", "### Issue 11 targets", "", targets(found), ""]
    parts += _errors(found) + ([""] if _errors(found) else [])
    if "push-cost" in found and "runs" in found["push-cost"]:
        parts += ["### Push cost vs repository size", "", push_table(found["push-cost"]), ""]
        parts += [push_chart(found["push-cost"]), ""]
    if "cli-repeat" in found and "runs" in found["cli-repeat"]:
        title = f"### CLI repeat runs ({found['cli-repeat']['manifests']:,} manifests)"
        parts += [title, "", cli_table(found["cli-repeat"]), ""]
    if "delete-ceiling" in found and "sides" in found["delete-ceiling"]:
        d = found["delete-ceiling"]
        title = f"### Delete ceiling: {d['scenario']['title']}, {_limits(d['settings'])}"
        parts += [title, "", sides_table(d), ""]
    if "fleet" in found and "workers" in found["fleet"]:
        d = found["fleet"]
        title = f"### Fleet: {d['scenario']['title']}, {_limits(d['settings'])}"
        parts += [title, "", fleet_table(d), ""]
    if "latency-bound" in found and "sides" in found["latency-bound"]:
        d = found["latency-bound"]
        latency = d["settings"]["latency_ms"]
        title = (
            f"### Latency-bound: {d['scenario']['title']}, {latency:g} ms a request, unthrottled"
        )
        parts += [title, "", sides_table(d, concurrency=True), ""]
    if "cpu" in found and "sides" in found["cpu"]:
        d = found["cpu"]
        title = f"### Client CPU per request ({d['images']:,} images, {d['concurrency']} in flight)"
        parts += [title, "", cpu_table(d), ""]
    parts.append(end)
    return "\n".join(parts)


def _limits(settings: dict[str, Any]) -> str:
    return (
        f"{settings['sku']} ({settings['writes_per_minute']:,} deletes/min per identity) "
        f"x{settings['time_scale']:g} = {settings['write_limit_per_s']:.0f} deletes/s"
    )
