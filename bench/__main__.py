"""`python -m bench`: run the benchmarks, store the results, regenerate docs/benchmarks.md.

    python -m bench                 # full sizes (what `make bench` runs), a few minutes
    python -m bench --quick         # smaller sizes for iteration; results in bench/results/quick
    python -m bench --report-only   # rebuild the document and chart from stored results

Everything runs against emulator processes on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import emulator, issue11, machine, report, report11, scenarios
from bench.runner import ROOT, SIDE_DESCRIPTIONS, SIDES, Options, run_scenario

RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, for iteration")
    size.add_argument("--tiny", action="store_true", help="minimal sizes (the smoke test)")
    size.add_argument(
        "--issue-sizes",
        action="store_true",
        help="the sizes issue 7 names (2,000; 500 x 10; 200): about nine minutes",
    )
    p.add_argument("--scenario", action="append", help="run only these scenarios (by name)")
    p.add_argument(
        "--suite",
        choices=("all", "issue7", "issue11"),
        default="all",
        help="issue7: the three-sides cleanup scenarios; issue11: " + ", ".join(issue11.SCENARIOS),
    )
    p.add_argument(
        "--issue11-sizes",
        default="{}",
        help='issue 11 sizes as JSON, e.g. {"push_manifests": [500]} (bench/issue11.py Sizes)',
    )
    p.add_argument("--side", action="append", choices=SIDES, help="run only these sides")
    p.add_argument("--no-planning", action="store_true", help="skip the planner benchmark")
    p.add_argument("--planning-manifests", type=int, default=None)
    p.add_argument("--latency-ms", type=float, default=10.0, help="injected per request")
    p.add_argument("--sku", default="Premium", choices=("Basic", "Standard", "Premium"))
    p.add_argument(
        "--time-scale",
        type=float,
        default=3.0,
        help="throttle budgets are multiplied by this (default 3)",
    )
    p.add_argument(
        "--burst-seconds",
        type=float,
        default=1.0,
        help="how many seconds of budget one burst may spend (default 1)",
    )
    p.add_argument(
        "--ours-limits",
        default="{}",
        help="ours: acr_core ExecutionLimits fields as JSON (default: none)",
    )
    p.add_argument("--deadline", type=float, default=600.0, help="per side and scenario, seconds")
    p.add_argument("--results", type=Path, default=None, help="directory for the JSON results")
    p.add_argument(
        "--doc",
        type=Path,
        default=None,
        help="document to update (full run: docs/benchmarks.md; --quick/--tiny: none unless given)",
    )
    p.add_argument("--chart", type=Path, default=None)
    p.add_argument("--report-only", action="store_true")
    return p


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _planning(manifests: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.planning", "--manifests", str(manifests)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"planning benchmark failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    size_label = (
        "tiny" if args.tiny else "quick" if args.quick else "issue" if args.issue_sizes else "full"
    )
    results_dir = args.results or (RESULTS if size_label == "full" else RESULTS / size_label)
    # Only a complete run into the default results directory rewrites docs/benchmarks.md.
    complete = args.results is None and not args.scenario and not args.side
    doc = args.doc or (DOC if size_label in ("full", "issue") and complete else None)
    # The issue-sized run fills a block of its own in the same document, without a chart.
    block = "issue-sizes" if size_label == "issue" else "results"
    chart = args.chart or (
        None
        if size_label == "issue"
        else CHART
        if doc == DOC
        else (doc.with_suffix(".png") if doc else None)
    )

    run7 = args.suite in ("all", "issue7")
    run11 = args.suite in ("all", "issue11") and size_label != "issue"
    if not args.report_only and run11:
        profile = size_label if size_label in issue11.PROFILES else "full"
        overrides = json.loads(args.issue11_sizes)
        only = [n for n in args.scenario or [] if n in issue11.SCENARIOS] or None
        if not args.scenario or only:

            def store(name: str, data: dict[str, Any]) -> None:
                data["machine"] = machine.describe()
                data["generated_at"] = datetime.now(UTC).replace(microsecond=0).isoformat()
                _write(results_dir / f"{report11.PREFIX}{name}.json", data)

            issue11.run_all(profile, only, args.deadline, overrides, store)
    if not args.report_only and run7:
        chosen = {
            "tiny": scenarios.tiny,
            "quick": scenarios.quick,
            "full": scenarios.full,
            "issue": scenarios.issue,
        }
        todo = [s for s in chosen[size_label]() if not args.scenario or s.name in args.scenario]
        sides = tuple(args.side or SIDES)
        settings = emulator.EmulatorSettings(
            latency_ms=args.latency_ms,
            sku=args.sku,
            time_scale=args.time_scale,
            burst_seconds=args.burst_seconds,
        )
        options = Options(settings=settings, deadline=args.deadline, ours_limits=args.ours_limits)
        common = {
            "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "machine": machine.describe(),
            "settings": {
                **settings.as_dict(),
                "size_label": size_label,
                "sides": {k: SIDE_DESCRIPTIONS[k] for k in sides},
                "ours_limits": json.loads(args.ours_limits),
                "deadline_s": args.deadline,
            },
        }
        for order, scenario in enumerate(todo):
            started = time.monotonic()
            print(f"{scenario.title}", file=sys.stderr, flush=True)
            sides_result = run_scenario(scenario, sides, options)
            _write(
                results_dir / f"{scenario.name}.json",
                {
                    "kind": "scenario",
                    "order": order,
                    "scenario": {
                        "name": scenario.name,
                        "title": scenario.title,
                        "repositories": scenario.repositories,
                        "images": scenario.images,
                        "push": scenario.push,
                        "keep": scenarios.KEEP,
                    },
                    "elapsed_s": time.monotonic() - started,
                    "sides": sides_result,
                    **common,
                },
            )
        if not args.no_planning and not (args.scenario and not todo):
            manifests = args.planning_manifests or {"tiny": 2_000, "quick": 20_000}.get(
                size_label, 100_000
            )
            print(f"planning {manifests:,} manifests", file=sys.stderr, flush=True)
            _write(
                results_dir / "planning.json",
                {
                    "kind": "planning",
                    "result": _planning(manifests),
                    "generated_at": common["generated_at"],
                    "machine": common["machine"],
                },
            )

    found, planning = report.load(results_dir)
    if doc is not None and run7:
        if chart is not None and importlib.util.find_spec("matplotlib") is None:
            print("matplotlib is not installed (bench/requirements.txt): no chart", file=sys.stderr)
            chart = None
        if found and chart is not None:
            report.chart(found, chart)
        rel = None if chart is None else chart.name if chart.parent == doc.parent else str(chart)
        report.update_document(doc, report.render(found, planning, rel, block), block)
    if doc is not None:
        found11 = report11.load(results_dir)
        if found11 and block == "results":
            meta = _meta11(found11)
            report.update_document(doc, report11.render(found11, meta), report11.BLOCK)
        print(f"updated {doc}", file=sys.stderr)
    for s in found:
        print(report.detail_table(s), file=sys.stderr)
    return 0


def _load(data: dict[str, Any]) -> object:
    return (data.get("machine") or {}).get("load_average_at_start")


def _meta11(found: dict[str, dict[str, Any]]) -> str:
    first = next(iter(found.values()))
    m = first.get("machine") or {}
    runs = "; ".join(
        f"`{name}` {data.get('generated_at')} ({_load(data)})" for name, data in found.items()
    )
    return (
        f"- Machine: {m.get('nproc')} CPUs ({m.get('cpu_model')}), {m.get('platform')}, Python "
        f"{m.get('python')}. Each scenario's sizes are in its title (all its settings are in "
        "its JSON file).\n"
        f"- Each scenario's result stored at (1, 5, 15-minute load averages then): {runs}."
    )


if __name__ == "__main__":
    sys.exit(main())
