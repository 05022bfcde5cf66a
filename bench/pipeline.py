"""Pipeline benchmark: one build, one conversion per format, uploads and test boots across clouds.

``imagefleet run`` (a subprocess, as ``tests/pipeline_run.py`` runs it) over
N = 1, 3, 6 of the six vendor shapes (the first N of rackspace-like, hp-like,
dreamhost-like, vexxhost-like, ovh-like, auro-like), all against one local
cloud started with ``--max-boots 2``, with the tiny prebuilt image as
``image.source`` and ``verify.check: ssh-banner``.  Each measurement gets a
fresh work directory and its own copy of the tiny image with a marker written
at 21 MiB, so its build digest is new and nothing is found already uploaded.
Each cloud is also run alone, the same way, for the single-cloud figures.

Upload+verify wall time, from the run's own records:

    wall = last VerifyImage completion - first upload start
    upload start (per cloud) = its UploadImage completion - its upload record's ``seconds``

Completions are the ledger's timestamps (``logs/tasks.jsonl``); the upload
record's ``seconds`` runs from digest lookup and image-API discovery to the
image being active, so the start leaves out only the task's dispatch, the
qemu-img check and the session (a fraction of a second, alike in every run).
Also printed: the same end minus the last LocalBoot completion (no upload of
the last format can start earlier, but uploads of the formats booted first
can, so this leaves out the work that overlapped the later local boots).

Printed for each N: builds and conversions performed (from the ledger; targets
1 and the number of distinct formats among the N clouds), the wall, (a) wall /
the sum of the N clouds' single-run walls (a sequential loop's cost; lower is
better), and (b) wall / (ceil(N / boot_cap) x slowest single boot + slowest
single upload), target (b) <= 1.2.  A single upload is a cloud's upload
``seconds`` from its single run; a single boot is what a test boot occupies a
boot slot for in its single run: the whole verify stage (single wall - its
upload seconds: keypair, server create, SSH banner, server delete), since the
cloud's boot cap counts a server until it is gone.  (b banner) is the same with
a boot counted only from server create to the SSH banner
(``seconds_to_reachable``), which leaves the fixed cost of creating and
deleting a server out of the model (so even N = 1 sits above 1 there).
Timings only, no assertions; the machine may be shared, so the load average
is printed before and after.

    .venv/bin/python bench/pipeline.py [--n 1 --n 3 --n 6] [--personalities a,b,...]
        [--workers W] [--repeat R] [--json out.json]

``--workers`` defaults to the number of clouds in the run (1 for a single
cloud, whose chain of tasks is sequential anyway).  With ``--repeat R`` every
measurement runs R times, interleaved, and the medians are used.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import MiB  # noqa: E402
from localcloud.testing import running_cloud  # noqa: E402
from tests.pipeline_run import (  # noqa: E402
    Pipeline,
    clouds_yaml_for,
    tiny_source,
    write_pipeline_yaml,
)

PERSONALITIES = ["rackspace-like", "hp-like", "dreamhost-like", "vexxhost-like", "ovh-like",
                 "auro-like"]
IMAGE_NAME = "benchfleet"
MARKER_OFFSET = 21 * MiB


def unique_source(path: Path, label: str) -> Path:
    """The tiny image with a marker at 21 MiB: a build digest no earlier run has seen."""
    shutil.copyfile(tiny_source(), path)
    with open(path, "r+b") as f:
        f.seek(MARKER_OFFSET)
        f.write(f"bench/pipeline {label} {time.time_ns()}".encode())
    return path


def task_prefix(family: str, cloud: str) -> str:
    """The start of a per-cloud task's luigi id (``cloud`` sorts before ``digest``)."""
    summary = "".join(c if c.isalnum() or c == "_" else "_" for c in cloud[:16])
    return f"{family}_{summary}_"


def completion(entries: list[dict[str, Any]], family: str, cloud: str) -> float:
    prefix = task_prefix(family, cloud)
    times = [e["time"] for e in entries if e["task_id"].startswith(prefix)]
    if not times:
        raise RuntimeError(f"no {family} for {cloud} in the ledger")
    return max(times)


def measure(lc, names: list[str], root: Path, workers: int, label: str,
            keep: bool) -> dict[str, Any]:
    """One ``imagefleet run`` over ``names`` in a fresh work directory, and its figures."""
    root.mkdir(parents=True)
    source = unique_source(root / "source.raw", label)
    pipeline = Pipeline(write_pipeline_yaml(root, source, name=IMAGE_NAME),
                        clouds_yaml_for(lc, names, root / "clouds.yaml"), root / "work")
    began = time.perf_counter()
    result = pipeline.run("--workers", str(workers))
    out: dict[str, Any] = {"clouds": names, "workers": workers,
                           "run_seconds": round(time.perf_counter() - began, 2),
                           "ok": result.returncode == 0}
    try:
        if result.returncode != 0:
            errors = [ln for ln in result.stderr.splitlines() if ln.startswith("imagefleet: ")]
            out["error"] = "; ".join(errors) or result.stderr[-500:]
            return out
        report = pipeline.report()
        entries = pipeline.ledger()
        counts = pipeline.tasks_run()
        rows = {row["cloud"]: row for row in report["clouds"]}
        run_start = min(e["time"] for e in entries)
        clouds = {}
        for name in names:
            row = rows[name]
            upload_end = completion(entries, "UploadImage", name)
            clouds[name] = {
                "disk_format": row["disk_format"], "mechanism": row["mechanism"],
                "upload_seconds": row["upload_seconds"],
                "reach_seconds": row["seconds_to_reachable"],
                "upload_start": upload_end - row["upload_seconds"],
                "verify_end": completion(entries, "VerifyImage", name)}
        first_upload = min(c["upload_start"] for c in clouds.values())
        last_verify = max(c["verify_end"] for c in clouds.values())
        local_boots = [e["time"] for e in entries if e["task"] == "LocalBoot"]
        for c in clouds.values():      # seconds after the build completed, for reading
            c["upload_start"] = round(c["upload_start"] - run_start, 2)
            c["verify_end"] = round(c["verify_end"] - run_start, 2)
        out.update({
            "builds": counts.get("BuildBaseImage", 0),
            "conversions": counts.get("ConvertImage", 0),
            "formats": sorted({c["disk_format"] for c in clouds.values()}),
            "wall": round(last_verify - first_upload, 2),
            "wall_after_last_local_boot": round(last_verify - max(local_boots), 2),
            "local_boot_spread": round(max(local_boots) - min(local_boots), 2),
            "per_cloud": clouds})
        return out
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first good run's shape with the medians of its numbers over the good runs."""
    good = [r for r in runs if r["ok"]]
    if not good:
        return runs[0]
    merged = dict(good[0], repeats=len(good), failed_repeats=len(runs) - len(good))
    for key in ("wall", "wall_after_last_local_boot", "local_boot_spread", "run_seconds"):
        merged[key] = statistics.median(r[key] for r in good)
    merged["per_cloud"] = {
        name: dict(first, **{key: statistics.median(r["per_cloud"][name][key] for r in good)
                             for key in ("upload_seconds", "reach_seconds")})
        for name, first in good[0]["per_cloud"].items()}
    return merged


def ratios(multi: dict[str, Any], singles: dict[str, dict[str, Any]],
           boot_cap: int) -> dict[str, float | None]:
    names = multi["clouds"]
    if not multi["ok"] or not all(singles[n]["ok"] for n in names):
        return dict.fromkeys(("sum_single", "a", "model", "b", "b_after_lb", "model_banner",
                              "b_banner"))
    cloud = {n: singles[n]["per_cloud"][n] for n in names}
    sum_single = sum(singles[n]["wall"] for n in names)
    slots = math.ceil(len(names) / boot_cap)
    slowest_upload = max(c["upload_seconds"] for c in cloud.values())
    model = slots * max(singles[n]["wall"] - cloud[n]["upload_seconds"] for n in names)
    model += slowest_upload
    banner = slots * max(c["reach_seconds"] for c in cloud.values()) + slowest_upload
    return {"sum_single": round(sum_single, 2), "a": round(multi["wall"] / sum_single, 3),
            "model": round(model, 2), "b": round(multi["wall"] / model, 3),
            "b_after_lb": round(multi["wall_after_last_local_boot"] / model, 3),
            "model_banner": round(banner, 2), "b_banner": round(multi["wall"] / banner, 3)}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append",
                        help="clouds per run (repeatable; default 1, 3, 6)")
    parser.add_argument("--personalities", default=",".join(PERSONALITIES),
                        help="comma-separated, in order; a run over N uses the first N")
    parser.add_argument("--workers", type=int, default=None,
                        help="luigi workers (default: the number of clouds in the run)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--max-boots", type=int, default=2,
                        help="the local cloud's concurrent-boot cap (boot_cap in ratio b)")
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep each run's work directory")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.personalities.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PERSONALITIES))
    if unknown:
        parser.error(f"unknown personalities: {', '.join(unknown)}")
    sizes = sorted({n for n in (args.n or [1, 3, 6]) if 1 <= n <= len(names)})

    def workers(count: int) -> int:
        return args.workers or count

    needed = names[:max(sizes)] if sizes else []
    single_runs: dict[str, list[dict]] = {n: [] for n in needed}
    multi_runs: dict[int, list[dict]] = {n: [] for n in sizes}
    if args.keep:
        tmp_ctx: Any = contextlib.nullcontext(tempfile.mkdtemp(dir=args.dir))
    else:
        tmp_ctx = tempfile.TemporaryDirectory(dir=args.dir)
    print(f"tiny image ({tiny_source().stat().st_size // MiB} MiB raw), one local cloud with "
          f"--max-boots {args.max_boots}; workers: "
          f"{args.workers or 'the number of clouds in the run'}; repeats: {args.repeat}")
    print(f"load average before: {load()} (2-core machine, shared with other test runs: "
          "timings are noisy)", flush=True)
    with tmp_ctx as tmp_name, running_cloud(needed, Path(tmp_name) / "localcloud",
                                            extra_args=["--max-boots", str(args.max_boots)]
                                            ) as lc:
        tmp = Path(tmp_name)
        if args.keep:
            print(f"work directories kept under {tmp}")
        for rep in range(args.repeat):
            for name in needed:
                label = f"single-{name}-{rep}"
                single_runs[name].append(measure(lc, [name], tmp / label, workers(1), label,
                                                 args.keep))
                r = single_runs[name][-1]
                print(f"  {label}: " + (f"wall {r['wall']:.2f} s, run {r['run_seconds']:.1f} s"
                                        if r["ok"] else f"FAILED: {r['error']}"), flush=True)
            for count in sizes:
                label = f"n{count}-{rep}"
                multi_runs[count].append(measure(lc, names[:count], tmp / label,
                                                 workers(count), label, args.keep))
                r = multi_runs[count][-1]
                print(f"  {label}: " + (f"wall {r['wall']:.2f} s, run {r['run_seconds']:.1f} s"
                                        if r["ok"] else f"FAILED: {r['error']}"), flush=True)
    print(f"load average after: {load()}")

    singles = {name: median_of(runs) for name, runs in single_runs.items()}
    print("\nsingle cloud (upload+verify wall; upload = record seconds; boot = create to banner)")
    print(f"{'cloud':<16} {'format':<6} {'mechanism':<18} {'upload s':>8} {'boot s':>7} "
          f"{'wall s':>7} {'run s':>7}")
    for name, r in singles.items():
        if not r["ok"]:
            print(f"{name:<16} FAILED: {r['error']}")
            continue
        c = r["per_cloud"][name]
        print(f"{name:<16} {c['disk_format']:<6} {c['mechanism']:<18} "
              f"{c['upload_seconds']:8.2f} {c['reach_seconds']:7.1f} {r['wall']:7.2f} "
              f"{r['run_seconds']:7.1f}")

    results = []
    print(f"\nN clouds, one run each (boot_cap {args.max_boots}; (a) = wall / sum of single "
          "walls; (b) = wall / model, target <= 1.2)")
    print(f"{'N':>2} {'wrk':>3} {'builds':>6} {'convs':>6} {'wall s':>7} {'sum1 s':>7} "
          f"{'(a)':>6} {'model s':>7} {'(b)':>6} {'(b ban)':>7} {'wall-LB s':>9} {'(b) LB':>6} "
          f"{'LB spr':>6} {'run s':>6}")
    for count in sizes:
        r = median_of(multi_runs[count])
        ratio = ratios(r, singles, args.max_boots)
        results.append({**r, **ratio})
        if not r["ok"]:
            print(f"{count:>2} FAILED: {r['error']}")
            continue
        target_convs = len(r["formats"])
        print(f"{count:>2} {r['workers']:>3} {r['builds']:>4}/1 {r['conversions']:>4}/"
              f"{target_convs} {r['wall']:7.2f} {_f(ratio['sum_single'], 7, 2)} "
              f"{_f(ratio['a'], 6, 3)} {_f(ratio['model'], 7, 2)} {_f(ratio['b'], 6, 3)} "
              f"{_f(ratio['b_banner'], 7, 3)} {r['wall_after_last_local_boot']:9.2f} {_f(ratio['b_after_lb'], 6, 3)} "
              f"{r['local_boot_spread']:6.1f} {r['run_seconds']:6.1f}")
    print("(b ban): model with a boot counted from server create to SSH banner; wall-LB: last "
          "verify minus last LocalBoot completion, (b) LB its ratio to the model; LB spr: "
          "first to last LocalBoot completion")
    for r in results:
        if r["ok"]:
            timeline = ", ".join(f"{n} {c['disk_format']} up@{c['upload_start']:.1f}"
                                 f"+{c['upload_seconds']:.1f} done@{c['verify_end']:.1f}"
                                 for n, c in r["per_cloud"].items())
            print(f"  N={len(r['clouds'])} timeline (s after the build): {timeline}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"max_boots": args.max_boots, "repeat": args.repeat, "singles": singles,
             "runs": results, "raw": {"singles": single_runs, "multi": multi_runs}},
            indent=2, sort_keys=True) + "\n")
        print(f"results: {args.json}")
    failed = [r for r in [*singles.values(), *results] if not r["ok"]]
    return 1 if failed else 0


def _f(value: float | None, width: int, places: int) -> str:
    return f"{value:{width}.{places}f}" if value is not None else f"{'-':>{width}}"


if __name__ == "__main__":
    sys.exit(main())
