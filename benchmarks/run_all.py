"""Run every benchmark with small defaults and write their JSON results into one file.

    .venv/bin/python benchmarks/run_all.py --out benchmarks/results.json [--gpu]

Each benchmark is its own script printing one JSON object per line; this runs them one after the other in
fresh processes (so one's threads and caches do not disturb the next) and collects the lines, with the
machine they ran on. Ratios against the reference implementations are measured inside each script, in the
same run; absolute CPU throughput on a shared machine is only indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> arguments for a quick CPU run; --gpu switches to the GPU-sized variants where a script has one.
BENCHMARKS = {
    "simulate": ["--size", "2048", "--repeats", "2"],
    "ingest": ["--files", "4", "--size", "2048", "--tile", "512", "--workers", "2"],
    "views": ["--batch", "32", "--size", "512", "--output-size", "224", "--repeats", "3"],
    "pretrain_step": ["--preset", "cpu", "--steps", "10"],
    "loader_throughput": ["--preset", "cpu", "--workers", "2", "--cutouts", "256", "--size", "256", "--steps", "8"],
    "probe": ["--max-per-class", "40", "--epochs", "20"],
    "search_embed": ["--n", "256"], "search_index": ["--n", "100000", "--dims", "192", "768", "--data", "clustered"],
}
GPU_BENCHMARKS = {
    "views": ["--batch", "256", "--size", "512", "--output-size", "224", "--device", "cuda"],
    "pretrain_step": ["--preset", "paper", "--steps", "20"],
    "search_embed": ["--model", "random:vit_base_patch16_224", "--device", "cuda", "--bf16", "--n", "8192"],
    "loader_throughput": ["--preset", "paper", "--workers", "12", "--cutouts", "1024", "--size", "512",
                          "--steps", "20"],
}


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        info["gpu"] = None
    return info


def run_one(name: str, args: list[str], timeout: int) -> dict:
    """Run benchmarks/<name>.py; returns its JSON lines (or the error) and the wall time."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=HERE.parent)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip().startswith("{")]
    entry = {"args": args, "seconds": round(time.perf_counter() - start, 1), "results": results}
    if proc.returncode != 0:
        entry["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return entry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "results.json"))
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--gpu", action="store_true", help="use the GPU-sized arguments where a script has them")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per benchmark")
    args = parser.parse_args()
    report = {"machine": machine(), "benchmarks": {}}
    for name, bench_args in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        bench_args = GPU_BENCHMARKS.get(name, bench_args) if args.gpu else bench_args
        print(f"[run_all] {name} {' '.join(bench_args)}", file=sys.stderr, flush=True)
        report["benchmarks"][name] = entry = run_one(name, bench_args, args.timeout)
        print(f"[run_all] {name}: {entry['seconds']} s{' ERROR ' + entry['error'] if 'error' in entry else ''}",
              file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"written": args.out, "failed": [n for n, e in report["benchmarks"].items() if "error" in e]}))
    return 1 if any("error" in e for e in report["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
