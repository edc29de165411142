"""``make bench``: every benchmark under benchmarks/ on PostgreSQL, one report.

Starts the platform once (separate processes, fresh PostgreSQL databases, fresh vhost), runs
each ``bench_*.py`` module's ``run(ctx)`` ``--runs`` times, and writes
``benchmarks/results/report.md`` and ``report.json``: for each figure the median of the runs,
its p50/p99 and its ratio to the floor measured in the same run.

    python benchmarks/run_all.py [--runs 3] [--only catalog,share]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform as pyplatform
import statistics
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for _svc in ("catalog", "shop", "share", "orders", "payouts", "gateway"):
    sys.path.insert(0, str(ROOT / "services" / _svc))

from benchmarks.common import platform_on_postgres  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = f", {kb // 1024 // 1024} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, Python {pyplatform.python_version()}"


def merge_runs(runs: list[list[dict]]) -> list[dict]:
    by_name: dict[str, list[dict]] = {}
    for run in runs:
        for fig in run:
            by_name.setdefault(fig["name"], []).append(fig)
    merged = []
    for figs in by_name.values():

        def med(key, figs=figs):
            vals = [f[key] for f in figs if isinstance(f.get(key), (int, float))]
            return round(statistics.median(vals), 3) if vals else None

        first = figs[0]
        merged.append(
            {
                **first,
                "value": med("value"),
                "p50_ms": med("p50_ms"),
                "p99_ms": med("p99_ms"),
                "floor_value": med("floor_value"),
                "ratio": med("ratio"),
                "runs": len(figs),
                "values": [f.get("value") for f in figs],
            }
        )
    return merged


def markdown(report: dict) -> str:
    lines = [
        "# Xiaopu benchmarks",
        "",
        f"Taken {report['taken_at']} on {report['machine']}; median of {report['runs']} "
        "runs; every ratio is to a floor measured in the same run.",
        "",
        "| benchmark | figure | value | p50 ms | p99 ms | floor | ratio | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bench, figs in report["benchmarks"].items():
        if isinstance(figs, dict) and "error" in figs:
            lines.append(f"| {bench} | failed: {figs['error']} | | | | | | |")
            continue
        for f in figs:
            lines.append(
                f"| {bench} | {f['name']} | {f['value']} {f.get('unit', '')} | "
                f"{f.get('p50_ms') or ''} | {f.get('p99_ms') or ''} | "
                f"{f.get('floor_name', '')} {f.get('floor_value') or ''} | "
                f"{f.get('ratio') if f.get('ratio') is not None else ''} | {f.get('goal', '')} |"
            )
    details = [
        (bench, f)
        for bench, figs in report["benchmarks"].items()
        if isinstance(figs, list)
        for f in figs
        if f.get("breakdown")
    ]
    if details:
        lines += ["", "## Breakdowns (first run)", ""]
        for bench, f in details:
            parts = ", ".join(f"{k} {v}" for k, v in f["breakdown"].items())
            lines.append(f"- {bench} / {f['name']}: {parts}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    names = sorted(p.stem[len("bench_") :] for p in (ROOT / "benchmarks").glob("bench_*.py"))
    if args.only:
        wanted = set(args.only.split(","))
        names = [n for n in names if n in wanted]
    if not names:
        print("no benchmarks found", file=sys.stderr)
        return 1
    report = {
        "taken_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "runs": args.runs,
        "benchmarks": {},
    }
    previous = RESULTS / "report.json"
    if args.only and previous.exists():  # re-running some benchmarks keeps the others' figures
        kept = json.loads(previous.read_text())
        report["benchmarks"] = {
            k: v for k, v in kept.get("benchmarks", {}).items() if k not in names
        }
    failed = False
    with platform_on_postgres() as ctx:
        for name in names:
            module = importlib.import_module(f"benchmarks.bench_{name}")
            print(f"== {name}", flush=True)
            runs = []
            try:
                for i in range(args.runs):
                    ctx.reset_floors()  # every run measures its own floor
                    figures = module.run(ctx)
                    for f in figures:
                        print(
                            f"   run {i + 1}: {f['name']}: {f['value']} {f.get('unit', '')}"
                            f" (ratio {f.get('ratio')})",
                            flush=True,
                        )
                    runs.append(figures)
                report["benchmarks"][name] = [
                    {**f, "taken_at": report["taken_at"]} for f in merge_runs(runs)
                ]
            except Exception as exc:
                failed = True
                traceback.print_exc()
                report["benchmarks"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    (RESULTS / "report.md").write_text(markdown(report))
    print(markdown(report))
    print(f"written: {RESULTS / 'report.md'} and report.json")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
