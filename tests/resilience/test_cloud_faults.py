"""Every fault the local cloud can inject, through the whole pipeline (``imagefleet run``).

Each row is one fault (or a few) on one cloud and the outcome an operator
wants: either the run ends well after a bounded number of retries (exit 0,
report ok), or it exits 1 with one line ``imagefleet: <cloud>: <step>: <cause>``
and no traceback.  Either way the cloud is left with nothing of the run but the
image: no server, floating IP, security group, rule, keypair or staged object,
and no half image.  A failure before the image is whole leaves no image at
all; a failure in verify keeps the whole, active image, which the upload record
names, so the next run verifies it again without uploading it again.

Each scenario publishes its own build under its own image name, so no
earlier upload is found and reused; faults are cleared after each one.  The
scenarios run in one lane per cloud, the lanes side by side (``-s`` prints
each scenario's own runtime).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.pipeline_run import (
    Pipeline,
    clouds_yaml_for,
    local_cloud,
    our_images,
    tiny_source,
    write_pipeline_yaml,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
NAMES = ["rackspace-like", "hp-like", "auro-like"]
V1_CREATE = r"/image/v1/images$"                 # hp-like: Glance v1 POST carries the data
V2_CREATE = r"/image/v2/images$"
V2_FILE = r"/image/v2/images/[^/]+/file$"       # auro-like: Glance v2 PUT of the data
MiB = 1 << 20
RUN_TIMEOUT = 300


@dataclass(frozen=True)
class Scenario:
    """One row: faults on one cloud, and what the run must end with."""

    id: str
    cloud: str
    faults: tuple[dict[str, Any], ...]
    outcome: str                                  # "ok" or "fail"
    step: str | None = None                       # of the error line, for "fail"
    words: tuple[str, ...] = ()                   # in the error line's cause
    overrides: dict[str, dict] = field(default_factory=dict)  # imagefleet: {overrides: ...}
    attempts: int | None = None                   # upload attempts of an "ok" run
    fired: int | None = None                      # exactly this often (default: at least once)

    @property
    def failed_stage(self) -> str:
        """The report's stage a failure in ``step`` belongs to."""
        return "upload" if self.step in ("upload", "staging") else "verify"


SCENARIOS = [
    Scenario("503-once-on-upload", "hp-like",
             ({"kind": "status", "status": 503, "service": "image", "method": "POST",
               "path": V1_CREATE},),
             "ok", attempts=2),
    Scenario("reset-mid-upload", "auro-like",
             ({"kind": "reset", "after_bytes": 2 * MiB, "service": "image", "method": "PUT",
               "path": V2_FILE},),
             "ok", attempts=2),
    Scenario("503-every-time", "rackspace-like",
             ({"kind": "status", "status": 503, "service": "object-store", "method": "PUT",
               "path": r"/imagefleet-staging/", "times": None},),
             "fail", "staging", ("Swift returned 503", "(Service Unavailable)"), fired=4),
    Scenario("413-not-retried", "hp-like",
             ({"kind": "status", "status": 413, "service": "image", "method": "POST",
               "path": V1_CREATE, "times": None,
               "message": "Image exceeds the storage quota"},),
             "fail", "upload", ("Glance v1 returned 413", "Image exceeds the storage quota"),
             fired=1),
    # A conflict on create is not a passing hiccup (Glance answers 409 for a duplicate
    # id or an image changing state under us): one clear line, no blind retry.
    Scenario("409-on-create", "auro-like",
             ({"kind": "status", "status": 409, "service": "image", "method": "POST",
               "path": V2_CREATE, "times": None,
               "message": "An image with identifier already exists"},),
             "fail", "upload", ("Glance v2 returned 409", "already exists"), fired=1),
    Scenario("stuck-in-saving", "auro-like",
             ({"kind": "stuck", "state": "saving", "service": "image", "method": "PUT",
               "path": V2_FILE},),
             "fail", "upload", ("still saving after 4 s",),
             overrides={"image": {"active_timeout": 4}}),
    Scenario("import-task-stuck-queued", "rackspace-like",
             ({"kind": "stuck", "state": "queued", "service": "image", "method": "POST",
               "path": r"/tasks$"},),
             "fail", "upload", ("import task", "still processing after 4 s"),
             overrides={"image": {"active_timeout": 4}}),
    Scenario("import-task-fails", "rackspace-like",
             ({"kind": "task_fail", "message": "Image import failed: the VHD footer is damaged"},),
             "fail", "upload", ("import task", "failed: Image import failed: the VHD footer")),
    Scenario("server-error", "rackspace-like",
             ({"kind": "server_error", "message": "No valid host was found."},),
             "fail", "boot", ("went to ERROR", "No valid host was found")),
    Scenario("floating-ip-quota", "hp-like",
             ({"kind": "quota_exceeded", "resource": "floating_ips"},),
             "fail", "verify", ("quota",)),
    Scenario("slow-build-past-timeout", "auro-like",
             ({"kind": "slow_build", "seconds": 60},),
             "fail", "boot", ("still BUILD after 6 s",),
             overrides={"compute": {"boot_timeout": 6}}),
    Scenario("no-answer-on-22", "hp-like",
             ({"kind": "no_answer"},),
             "fail", "reach", ("no SSH banner within",),
             overrides={"compute": {"boot_timeout": 12}}),
    Scenario("token-expires-mid-upload", "auro-like",
             ({"kind": "token_expire", "service": "image", "method": "PUT", "path": V2_FILE},),
             "ok", attempts=2),
    Scenario("token-expires-mid-verify", "hp-like",
             ({"kind": "token_expire", "service": "compute", "method": "GET",
               "path": r"/servers/[^/]+$"},),
             "ok", attempts=1),
    Scenario("slow-responses", "rackspace-like",
             ({"kind": "delay", "seconds": 3, "service": "object-store", "method": "PUT"},
              {"kind": "delay", "seconds": 2, "service": "compute", "method": "GET",
               "times": 2}),
             "ok", attempts=1),
]


@pytest.fixture(scope="module")
def lc(tmp_path_factory):
    yield from local_cloud(tmp_path_factory, NAMES)


def scenario_pipeline(lc, root: Path, scenario: Scenario) -> tuple[Pipeline, str]:
    """A pipeline of its own (source, image name, clouds.yaml with the row's overrides)."""
    root.mkdir(parents=True)
    source = root / "source.raw"
    source.write_bytes(tiny_source().read_bytes())
    with open(source, "r+b") as f:                       # a build no other scenario published
        f.seek(21 << 20)
        f.write(scenario.id.encode())
    image_name = f"cf-{scenario.id}"
    clouds_yaml = clouds_yaml_for(lc, [scenario.cloud], root / "clouds.yaml")
    data = yaml.safe_load(clouds_yaml.read_text())
    overrides = data["clouds"][scenario.cloud].setdefault("imagefleet", {}).setdefault(
        "overrides", {})
    for section, values in scenario.overrides.items():
        overrides.setdefault(section, {}).update(values)
    clouds_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    config = write_pipeline_yaml(root, source, name=image_name)
    return Pipeline(config, clouds_yaml, root / "work"), image_name


@dataclass
class Outcome:
    """One scenario's run and its cloud just after it; ``leftovers`` is what ``leaks`` asks."""

    pipeline: Pipeline
    image_name: str
    seconds: float
    faults: list[dict]
    left: dict[str, list]
    images: list[dict]
    result: subprocess.CompletedProcess | None = None
    harness_error: str | None = None

    def leftovers(self, cloud: str) -> dict[str, list]:
        return self.left


def run_scenario(lc, root: Path, scenario: Scenario) -> Outcome:
    name = scenario.cloud
    pipeline, image_name = scenario_pipeline(lc, root, scenario)
    for spec in scenario.faults:
        lc.add_fault(name, **spec)
    began = time.monotonic()
    result, harness_error = None, None
    try:
        result = pipeline.run("--cloud", name, timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        harness_error = f"the run did not end within {RUN_TIMEOUT} s"
    finally:
        faults = lc.faults(name)
        lc.clear_faults(name)
    return Outcome(pipeline=pipeline, image_name=image_name,
                   seconds=time.monotonic() - began, faults=faults, left=lc.leftovers(name),
                   images=our_images(lc, name, image_name), result=result,
                   harness_error=harness_error)


@pytest.fixture(scope="module")
def outcomes(lc, request, tmp_path_factory) -> dict[str, Outcome]:
    """The selected scenarios, run in one lane per cloud, each lane one run at a time.

    Faults match by cloud and each lane has a cloud of its own, so lanes cannot
    disturb each other, and what a cloud holds after a run is that run's doing.
    """
    selected = [item.callspec.params["scenario"] for item in request.session.items
                if item.module is request.module and "scenario" in getattr(
                    item, "callspec", SimpleNamespace(params={})).params]
    lanes: dict[str, list[Scenario]] = {}
    for scenario in selected:
        lanes.setdefault(scenario.cloud, []).append(scenario)
    tiny_source()                                       # build or find it once, not per lane
    root = tmp_path_factory.mktemp("scenarios")

    def lane(scenarios: list[Scenario]) -> dict[str, Outcome]:
        return {s.id: run_scenario(lc, root / s.id, s) for s in scenarios}

    began = time.monotonic()
    found: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(lanes))) as pool:
        for outcomes_of_lane in pool.map(lane, lanes.values()):
            found.update(outcomes_of_lane)
    print(f"\n{len(found)} scenarios in {len(lanes)} lanes: {time.monotonic() - began:.1f} s")
    return found


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("imagefleet: ")]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_fault_through_the_whole_pipeline(outcomes, leaks, scenario):
    name = scenario.cloud
    outcome = outcomes[scenario.id]
    leaked = leaks.count(outcome, name)
    assert outcome.harness_error is None, outcome.harness_error
    result, pipeline = outcome.result, outcome.pipeline
    errors = error_lines(result.stderr)
    print(f"\n{scenario.id} on {name}: exit {result.returncode} in {outcome.seconds:.1f} s; "
          f"{errors[0] if errors else 'no error line'}")

    tail = result.stderr[-3000:]
    assert "Traceback" not in result.stderr, tail
    assert len(outcome.faults) == len(scenario.faults)
    for fault in outcome.faults:
        if scenario.fired is not None:
            assert fault["fired"] == scenario.fired, (fault, tail)
        else:
            assert fault["fired"] >= 1, f"the fault never fired: {fault}"
    report = pipeline.report()
    (row,) = report["clouds"]
    images = [(i["id"], i["status"]) for i in outcome.images]

    if scenario.outcome == "ok":
        assert result.returncode == 0, tail
        assert errors == [], errors
        assert report["ok"] and report["failed"] == [] and row["status"] == "done", row
        upload = json.loads((pipeline.work / "uploads" / report["build_id"] /
                             f"{name}.json").read_text())
        assert upload["attempts"] == scenario.attempts, upload
        assert images == [(row["image_id"], "active")], images
    else:
        assert result.returncode == 1, tail
        assert len(errors) == 1, errors
        match = re.fullmatch(rf"imagefleet: {re.escape(name)}: {scenario.step}: (.+)",
                             errors[0])
        assert match, errors[0]
        cause = match.group(1)
        for word in scenario.words:
            assert word.lower() in cause.lower(), (word, errors[0])
        assert not re.search(r"\bb'|<html|\{\"", cause), f"not a clear cause: {cause}"
        assert not report["ok"] and report["failed"] == [name], report
        assert row["status"] == "failed", row
        assert row["error"] == errors[0].removeprefix("imagefleet: "), row
        assert row["stages"][scenario.failed_stage] == "failed", row
        if scenario.failed_stage == "upload":              # no image, whole or half
            assert images == [], images
        else:                                              # the whole image, for a rerun
            assert images == [(row["image_id"], "active")], images
    assert leaked == 0, outcome.left
    assert not list((pipeline.work / "journal").glob("*.json"))
