"""``imagefleet``: the command line over the pipeline and its Luigi tasks.

Expected failures print one line ``imagefleet: <where>: <step>: <cause>`` and
exit non-zero; ``-v`` adds luigi's output and tracebacks; the log file under
the work directory keeps everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import sys
import time
from pathlib import Path

import luigi
import luigi.configuration

from localcloud.server import main as localcloud_main
from pipeline.cloud import session
from pipeline.cloud.cleanup import sweep
from pipeline.cloud.connection import discover
from pipeline.core.errors import ConfigError, PipelineError
from pipeline.core.formats import EXTENSION, distinct_formats
from pipeline.image.build import plan_build
from pipeline.run import builds, failures, ledger, logsetup, metrics, nights
from pipeline.run.prune import prune
from pipeline.run.report import make_report, paused_row, render_table, write_report
from pipeline.run.runlock import run_lock
from pipeline.run.runreport import collect_rows
from pipeline.run.workdir import WorkDir
from pipeline.settings.clouds import SECRET_KEYS, load_clouds, select_clouds
from pipeline.settings.config import load_pipeline, load_profiles
from pipeline.settings.plan import render_discovery, render_plan
from pipeline.settings.profile import kernel_refusal
from tasks import fleetcli
from tasks.base import DEFAULT_COMPRESSED, planned_compression
from tasks.build import BuildImages, ConvertImage
from tasks.publish import Publish

LOG = logging.getLogger("imagefleet")
EXIT_FAILED, EXIT_CONFIG = 1, 2
LUIGI_CFG = Path(__file__).resolve().parent.parent / "config" / "luigi.cfg"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more detail on the console (-vv: debug)")
    p.add_argument("--config", default=os.environ.get("IMAGEFLEET_CONFIG", "config/pipeline.yaml"),
                   help="pipeline.yaml (default: %(default)s)")
    p.add_argument("--clouds-yaml", default=None,
                   help="clouds.yaml to read (default: OS_CLIENT_CONFIG_FILE or the standard search path)")
    p.add_argument("--cloud", action="append", default=None, metavar="NAME[/REGION]",
                   help="only this cloud, every region of it or one (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imagefleet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-config", help="validate pipeline.yaml, vendor profiles and clouds.yaml")
    _add_common(check)
    check.add_argument("--discover", action="store_true",
                       help="also ask each cloud: image API, import methods, object store, "
                       "compute microversion")
    build = sub.add_parser("build", help="build the base image and convert it for every cloud")
    _add_common(build)
    build.add_argument("--work-dir", default=os.environ.get("IMAGEFLEET_WORK_DIR", "work"))
    build.add_argument("--workers", type=int, default=1)
    build.add_argument("--format", action="append", dest="formats", default=None,
                       choices=sorted(EXTENSION),
                       help="convert to this format instead of the clouds' formats (repeatable)")
    run = sub.add_parser("run", help="build, convert, upload and verify for every cloud")
    _add_common(run)
    run.add_argument("--work-dir", default=os.environ.get("IMAGEFLEET_WORK_DIR", "work"))
    run.add_argument("--workers", type=int, default=3)
    run.add_argument("--date", type=datetime.date.fromisoformat, default=None,
                     help="the run's date (default: the clock's); each date is a distinct run")
    run.add_argument("--now", default=None, metavar="TIME",
                     help="the run's clock, ISO 8601 (default: $IMAGEFLEET_NOW, else the "
                     "system clock): decides whether the build is older than rebuild_age")
    run.add_argument("--rebuild", action="store_true",
                     help="build again even if the last build is younger than rebuild_age")
    run.add_argument("--scheduler-url", default=None,
                     help="a luigid to schedule through (default: a local scheduler)")
    cleanup = sub.add_parser("cleanup", help="remove verify servers, floating IPs, rules and "
                             "keypairs a crashed run left behind")
    _add_common(cleanup)
    cleanup.add_argument("--work-dir", default=os.environ.get("IMAGEFLEET_WORK_DIR", "work"))
    report = sub.add_parser("report", help="print the last run's report")
    report.add_argument("--work-dir", default=os.environ.get("IMAGEFLEET_WORK_DIR", "work"))
    report.add_argument("--json", action="store_true")
    report.add_argument("-v", "--verbose", action="count", default=0)
    fleetcli.add_parsers(sub, _add_common)
    lc = sub.add_parser("localcloud", help="serve OpenStack APIs on 127.0.0.1 (offline rehearsal)",
                        add_help=False)
    lc.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def load_all(args: argparse.Namespace):
    """Load and cross-check every configuration file; returns (config, clouds)."""
    config = load_pipeline(args.config)
    profiles = load_profiles(config.vendors_dir)
    clouds = load_clouds(args.clouds_yaml)
    selected = select_clouds(config, profiles, clouds, only=args.cloud)
    for cloud in selected:
        refusal = kernel_refusal(config.environment, cloud.profile)
        if refusal:
            raise ConfigError(refusal, file=str(config.path), key="image.environment")
        # OS_PASSWORD sits at the top level until openstacksdk validates the auth
        for secret in _secrets_of({**cloud.config.config, **cloud.config.auth}):
            logsetup.register_secret(secret)
        session.auth_plugin(cloud.config)       # incomplete credentials: refused now
    return config, selected


def _secrets_of(auth: dict) -> list[str]:
    return [str(v) for k, v in auth.items() if k in SECRET_KEYS and v]


def cmd_check_config(args: argparse.Namespace) -> int:
    config, selected = load_all(args)
    plan = plan_build(config)
    print(f"pipeline: {config.path} (image {config.image_name}, build {plan.build_id})")
    print(render_plan(selected))
    print(f"formats to convert: {', '.join(distinct_formats(c.disk_format for c in selected))}")
    if args.discover:
        found, code = {}, 0
        for cloud in selected:       # one unreachable cloud does not hide the others
            try:
                found[cloud.name] = discover(cloud)
            except PipelineError as e:
                print(f"imagefleet: {e.at(where=cloud.name, step='discovery')}",
                      file=sys.stderr)
                code = EXIT_FAILED
        print(render_discovery(found))
        return code
    return 0


def configure_luigi(work_dir: Path, config_path: str, clouds_yaml: str | None) -> None:
    luigi.configuration.add_config_path(str(LUIGI_CFG))
    cfg = luigi.configuration.get_config()
    cfg.set("core", "no_configure_logging", "true")  # ours (logsetup) is already in place
    cfg.set("core", "autoload_range", "false")
    cfg.set("imagefleet", "work_dir", str(work_dir))
    cfg.set("imagefleet", "config", str(Path(config_path).resolve()))
    if clouds_yaml:
        cfg.set("imagefleet", "clouds_yaml", str(Path(clouds_yaml).resolve()))


def run_luigi(tasks: list, work_dir: Path, workers: int, scheduler_url: str | None = None) -> int:
    """Run ``tasks``; print one line per failure; the exit code says whether all succeeded."""
    started = time.time()
    env = {"workers": workers, "detailed_summary": True}
    if scheduler_url:
        env["scheduler_url"] = scheduler_url
        # Wait while another worker process (another host) runs what we need.
        luigi.configuration.get_config().set("worker", "keep_alive", "true")
    else:
        env["local_scheduler"] = True
    result = luigi.build(tasks, **env)
    failures = read_failures(work_dir, since=started) or scheduler_failures(result)
    for line in failures:
        print(f"imagefleet: {line}", file=sys.stderr)
    ok = result.scheduling_succeeded and result.status.name in (
        "SUCCESS", "SUCCESS_WITH_RETRY")
    if not ok and not failures:
        print(f"imagefleet: run: {result.one_line_summary}", file=sys.stderr)
    return 0 if ok else EXIT_FAILED


def read_failures(work_dir: Path, since: float) -> list[str]:
    return [f.error for f in failures.since(WorkDir(work_dir), since)]


def scheduler_failures(result) -> list[str]:
    """The failed tasks' lines as the scheduler holds them (what ``on_failure`` returned):
    for when the work disk had no room for the failure records."""
    scheduler = getattr(result.worker, "_scheduler", None)   # luigi keeps no public handle
    try:
        failed = scheduler.task_list("FAILED", "") if scheduler else {}
        lines = [(scheduler.fetch_error(task_id) or {}).get("error") for task_id in failed]
    except Exception as e:      # noqa: BLE001 - only a fallback for the summary line
        LOG.debug("no failure lines from the scheduler: %s", e)
        return []
    return [line.strip() for line in lines if line and "\n" not in line.strip()]


def cmd_build(args: argparse.Namespace) -> int:
    if args.formats:  # explicit formats: no clouds.yaml needed
        config = load_pipeline(args.config)
        formats = distinct_formats(args.formats)
        compressed = DEFAULT_COMPRESSED
    else:
        config, selected = load_all(args)
        formats = distinct_formats(c.disk_format for c in selected)
        compressed = planned_compression(selected)
    plan = plan_build(config)
    work_dir = Path(args.work_dir).resolve()
    configure_luigi(work_dir, args.config, args.clouds_yaml)
    LOG.info("build %s: formats %s", plan.build_id, ", ".join(formats))
    code = run_luigi([BuildImages(digest=plan.digest, disk_formats=formats,
                                  compressed=compressed)], work_dir, args.workers)
    if code == 0:
        for fmt in formats:
            print(ConvertImage(digest=plan.digest, disk_format=fmt).output().path)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    config, selected = load_all(args)
    paused = [c for c in selected if c.name in config.paused]
    selected = [c for c in selected if c.name not in config.paused]
    clock = builds.now(args.now)
    args.date = args.date or clock.date()
    work_dir = Path(args.work_dir).resolve()
    configure_luigi(work_dir, args.config, args.clouds_yaml)
    started = time.time()
    names = [c.name for c in selected]
    with run_lock(work_dir):
        plan = plan_build(config)
        plan = dataclasses.replace(plan, built_at=builds.choose_built_at(
            WorkDir(work_dir), plan.digest, clock, config.rebuild_age, force=args.rebuild))
        builds.claim(WorkDir(work_dir), plan.digest, plan.built_at)
        LOG.info("run %s: build %s (%s) for %s", args.date, plan.build_id, plan.built_at,
                 ", ".join(names))
        code = run_luigi([Publish(date=args.date, digest=plan.digest, built_at=plan.built_at,
                                  clouds=names, compressed=planned_compression(selected))],
                         work_dir, args.workers,
                         args.scheduler_url) if names else 0
    rows = collect_rows(work_dir, plan.build_id, selected, since=started)
    rows += [paused_row(c.name, c.profile.name, c.disk_format) for c in paused]
    report = make_report(str(args.date), plan.build_id, rows, started,
                         tasks_run=ledger.counts(work_dir, since=started))
    report.update(nights.sections(work_dir, report, started,
                                  {c.name: c.disk_format for c in selected}))
    try:                # every run, also one whose report cannot be written
        metrics.write(WorkDir(work_dir).metrics, report)
    except OSError as e:
        LOG.warning("metrics not written: %s", e)
    print(render_table(report))
    try:
        path = write_report(WorkDir(work_dir).report_dir(str(args.date)), report)
    except OSError as e:
        if code:        # the failure already has its line; this one follows from it
            LOG.warning("report not written: %s", e)
            return code
        print(f"imagefleet: report: cannot write {WorkDir(work_dir).reports}: {e.strerror or e}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"report: {path} (and report.html)")
    if code == 0 and report["ok"]:
        prune(WorkDir(work_dir), config.keep_local, protect={plan.build_id})
    return code if code else (0 if report["ok"] else EXIT_FAILED)


def cmd_cleanup(args: argparse.Namespace) -> int:
    _, selected = load_all(args)
    journal = WorkDir(Path(args.work_dir).resolve()).journal
    code = 0
    for cloud in selected:  # one broken cloud does not keep the others dirty
        try:
            removed = sweep(cloud, journal_dir=journal)
        except PipelineError as e:
            print(f"imagefleet: {e.at(where=cloud.name, step='cleanup')}", file=sys.stderr)
            code = EXIT_FAILED
            continue
        summary = ", ".join(f"{len(v)} {k}" for k, v in removed.items()) or "nothing"
        print(f"{cloud.name}: removed {summary}")
    return code


def cmd_report(args: argparse.Namespace) -> int:
    path = WorkDir(Path(args.work_dir).resolve()).latest_report
    if not path.is_file():
        raise PipelineError("no report yet (run 'imagefleet run')", where=str(path),
                            step="report")
    report = json.loads(path.read_text())
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else render_table(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["localcloud"]:
        return localcloud_main(argv[1:])
    args = build_parser().parse_args(argv)
    work_dir = Path(getattr(args, "work_dir", None) or "work").resolve()
    logsetup.configure(args.verbose, WorkDir(work_dir).cli_log)
    handlers = {"check-config": cmd_check_config, "build": cmd_build, "run": cmd_run,
                "cleanup": cmd_cleanup, "report": cmd_report,
                **{name: lambda a: fleetcli.run(a, load_all) for name in fleetcli.HANDLERS}}
    try:
        return handlers[args.command](args)
    except PipelineError as e:
        LOG.debug("failed", exc_info=True)
        print(f"imagefleet: {e}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(e, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:
        print("imagefleet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
