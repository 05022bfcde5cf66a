"""Bad input, whole pipeline: a user's mistake ends in one line naming where, the step and why.

Configuration mistakes (``pipeline.yaml``, a vendor profile, ``clouds.yaml``,
an element) are refused by ``check-config`` and by ``run`` before any work.
Cloud mistakes (credentials missing or wrong, no image service) and damaged
images fail their own stage: nothing half-written in the work directory looks
complete, nothing is left in the cloud.  A full work disk fails the same way.

The cloud scenarios start from a work directory whose build, conversion and
local boot are already done (as a previous night would leave it), so each run
only reaches the cloud; one local cloud serves hp-like and an hp-like whose
catalog lists no image service.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from localcloud.personality import PERSONALITY_DIR
from localcloud.testing import running_cloud
from pipeline.image.build import plan_build
from pipeline.settings.config import load_pipeline
from tests.built_image import REPO
from tests.integration.test_image_checks import corrupt_qcow2
from tests.localcloud import tinyimage
from tests.pipeline_run import Pipeline, tiny_source, write_pipeline_yaml

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HP = "hp-like"
IMAGELESS = "imageless-like"          # hp-like's shape, but the catalog has no image service
RUN_TIMEOUT = 300                     # a hang is a failure, not a 15-minute wait
CONSOLE_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d [DIW] ")   # progress, not an error
STAGE_OUTPUTS = ("builds/*/base.raw", "images/*/image.*", "localboot/*/*.json",
                 "uploads/*/*.json", "verify/*/*.json")


def the_error(result: subprocess.CompletedProcess) -> str:
    """The single ``imagefleet: `` line of a failed run; everything else is progress."""
    stderr = result.stderr
    assert result.returncode != 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("imagefleet: ")]
    noise = [line for line in lines
             if not line.startswith("imagefleet: ") and not CONSOLE_LOG_LINE.match(line)]
    assert len(errors) == 1, stderr[-3000:]
    assert not noise, noise[:10]
    return errors[0]


def assert_nothing_half_written(work: Path, absent: Sequence[str] = STAGE_OUTPUTS) -> None:
    """No temporary partials, every JSON record parses, no output of the failed stage."""
    files = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    partial = [str(p) for p in files if "luigi-tmp" in p.name or p.name.endswith(".tmp")]
    assert not partial, f"partial files left: {partial}"
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text() or "<empty>")
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
    found = [str(p) for pattern in absent for p in work.glob(pattern)]
    assert not found, f"outputs of the failed stage look complete: {found}"


def assert_cloud_untouched(cloud, personality: str, leaks) -> None:
    assert leaks.count(cloud, personality) == 0
    assert cloud.resources(personality).get("images", []) == []


def write_clouds(path: Path, entries: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"clouds": entries}, sort_keys=False))
    return path


def imageless_personality(directory: Path) -> Path:
    data = yaml.safe_load((PERSONALITY_DIR / f"{HP}.yaml").read_text())
    data.update(name=IMAGELESS, description="hp-like without an image service in its catalog",
                services=[s for s in data["services"] if s != "image"])
    path = directory / f"{IMAGELESS}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    root = tmp_path_factory.mktemp("localcloud")
    with running_cloud([HP, str(imageless_personality(root))], root / "data") as lc:
        yield lc


@pytest.fixture(scope="module")
def booted(tmp_path_factory) -> Path:
    """A pipeline.yaml and a work directory where build, qcow2 and local boot are done."""
    root = tmp_path_factory.mktemp("booted")
    config = write_pipeline_yaml(root, tiny_source())
    digest = plan_build(load_pipeline(config)).digest
    luigi_cfg = root / "luigi.cfg"
    luigi_cfg.write_text((REPO / "config" / "luigi.cfg").read_text()
                         + f"\n[imagefleet]\nwork_dir = {root / 'work'}\nconfig = {config}\n")
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(luigi_cfg), PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "luigi", "--module", "tasks", "LocalBoot",
                             "--digest", digest, "--disk-format", "qcow2", "--local-scheduler",
                             "--no-lock"],   # luigi locks by command line, machine-wide
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    done = list((root / "work" / "localboot").glob("*/qcow2.json"))
    assert result.returncode == 0 and done, (result.stdout + result.stderr)[-3000:]
    return root


def booted_pipeline(booted: Path, root: Path, clouds: dict[str, dict]) -> Pipeline:
    """A copy of the booted work directory and a clouds.yaml of ``clouds``."""
    shutil.copytree(booted / "work", root / "work", symlinks=True)
    return Pipeline(booted / "pipeline.yaml", write_clouds(root / "clouds.yaml", clouds),
                    root / "work")


# --- configuration: refused before any work, by check-config and by run ---------------

@dataclass
class BadConfig:
    pipeline: Pipeline
    expected: list[str]       # the place, the step and the cause, in the one line
    exit_code: int = 2


def _pipeline(cloud, root: Path, *, entry: dict | None = None,
              extra: dict | None = None) -> Pipeline:
    clouds = write_clouds(root / "clouds.yaml", {HP: entry or cloud.config(HP)})
    return Pipeline(write_pipeline_yaml(root, tiny_source(), extra=extra), clouds, root / "work")


def malformed_pipeline_yaml(cloud, root: Path) -> BadConfig:
    pipeline = _pipeline(cloud, root)
    pipeline.config.write_text("image:\n  name: tinyfleet\n   source: tiny.raw\n")
    return BadConfig(pipeline, [f"imagefleet: {pipeline.config}: config: ",
                                "malformed YAML: line 3"])


def unknown_key_in_pipeline_yaml(cloud, root: Path) -> BadConfig:
    pipeline = _pipeline(cloud, root, extra={"retention": {"keep": 2, "kep": 3}})
    return BadConfig(pipeline, [f"imagefleet: {pipeline.config}: config: ",
                                "retention.kep: unknown key"])


def unknown_key_in_vendor_profile(cloud, root: Path) -> BadConfig:
    vendors = root / "vendors"
    shutil.copytree(REPO / "config" / "vendors", vendors)
    profile = vendors / f"{HP}.yaml"
    data = yaml.safe_load(profile.read_text())
    data["image"]["disk_format"] = "qcow2"            # singular: a typo of disk_formats
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    pipeline = _pipeline(cloud, root, extra={"vendors_dir": str(vendors)})
    return BadConfig(pipeline, [f"imagefleet: {profile}: config: ",
                                "image.disk_format: unknown key"])


def unknown_image_format(cloud, root: Path) -> BadConfig:
    pipeline = _pipeline(cloud, root, entry=dict(cloud.config(HP), image_format="vmdk"))
    return BadConfig(pipeline, [f"imagefleet: {pipeline.clouds_yaml}: config: ",
                                f"clouds.{HP}.image_format: unknown format 'vmdk'"])


def format_the_vendor_refuses(cloud, root: Path) -> BadConfig:
    pipeline = _pipeline(cloud, root, entry=dict(cloud.config(HP), image_format="vhd"))
    return BadConfig(pipeline, [f"imagefleet: {pipeline.clouds_yaml}: config: ",
                                f"clouds.{HP}.image_format: format 'vhd' is not accepted"])


def missing_element(cloud, root: Path) -> BadConfig:
    pipeline = _pipeline(cloud, root, extra={
        "image": {"name": "tinyfleet", "elements": ["no-such-element"]}})
    return BadConfig(pipeline, [str(pipeline.config), ": build: ",
                                "element 'no-such-element' not found"])



@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.parametrize("scenario", [
    malformed_pipeline_yaml, unknown_key_in_pipeline_yaml, unknown_key_in_vendor_profile,
    unknown_image_format, format_the_vendor_refuses,
    missing_element,
], ids=lambda f: f.__name__)
def test_bad_config_is_one_line_before_any_work(cloud, tmp_path, leaks, scenario, command):
    bad = scenario(cloud, tmp_path)
    result = bad.pipeline.run(command=command, timeout=RUN_TIMEOUT)
    line = the_error(result)
    for part in bad.expected:
        assert part in line, line
    assert result.returncode == bad.exit_code, line
    assert_nothing_half_written(bad.pipeline.work)
    assert not (bad.pipeline.work / "failures").exists()
    assert_cloud_untouched(cloud, HP, leaks)


# --- the cloud: the upload stage fails, nothing is left behind --------------------------

def without_password(cloud) -> tuple[str, dict]:
    entry = cloud.config(HP)
    del entry["auth"]["password"]
    return HP, entry


def wrong_password(cloud) -> tuple[str, dict]:
    entry = cloud.config(HP)
    entry["auth"]["password"] = "not-" + entry["auth"]["password"]
    return HP, entry


def no_image_service(cloud) -> tuple[str, dict]:
    entry = cloud.config(IMAGELESS)
    return IMAGELESS, dict(entry, imagefleet={**entry.get("imagefleet", {}), "profile": HP})



@pytest.mark.parametrize("scenario, expected, exit_codes", [
    # Refused by the config check (2) or when the upload authenticates (1): either is one line.
    pytest.param(without_password, r"^imagefleet: \S+: (config|auth): .*password", {1, 2},
                 id="without_password"),
    pytest.param(wrong_password, rf"^imagefleet: {HP}: auth: .*\b401\b", {1},
                 id="wrong_password"),
    pytest.param(no_image_service,
                 rf"^imagefleet: {IMAGELESS}: (upload|discovery): .*endpoint.* image\b", {1},
                 id="no_image_service"),
])
def test_cloud_refusal_fails_the_upload_and_leaves_nothing(cloud, booted, tmp_path, leaks,
                                                           scenario: Callable, expected: str,
                                                           exit_codes: set[int]):
    name, entry = scenario(cloud)
    pipeline = booted_pipeline(booted, tmp_path, {name: entry})
    result = pipeline.run(timeout=RUN_TIMEOUT)
    line = the_error(result)
    assert name in line and "Error:" not in line, line      # no Python exception names
    assert re.search(expected, line), line
    assert result.returncode in exit_codes, line
    assert_nothing_half_written(pipeline.work, [f"uploads/*/{name}.json",
                                                f"verify/*/{name}.json"])
    if result.returncode == 1:                               # the run got as far as a report
        report = pipeline.report()
        assert report["failed"] == [name] and not report["ok"]
    assert_cloud_untouched(cloud, name, leaks)


def test_image_damaged_after_conversion_is_caught_before_upload(cloud, booted, tmp_path,
                                                                 leaks):
    pipeline = booted_pipeline(booted, tmp_path, {HP: cloud.config(HP)})
    (image,) = pipeline.work.glob("images/*/image.qcow2")
    with open(image, "r+b") as f:
        f.truncate(image.stat().st_size - 65536)
    result = pipeline.run(timeout=RUN_TIMEOUT)
    line = the_error(result)
    assert line.startswith(f"imagefleet: {HP}: check before upload: image.qcow2"), line
    assert "truncated" in line
    assert result.returncode == 1
    assert_nothing_half_written(pipeline.work, [f"uploads/*/{HP}.json", f"verify/*/{HP}.json"])
    assert_cloud_untouched(cloud, HP, leaks)


# --- the image source: refused on import, nothing built or uploaded ---------------------

def damaged_header(path: Path) -> None:
    corrupt_qcow2(path)


def cut_short(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize("damage", [damaged_header, cut_short], ids=lambda f: f.__name__)
def test_damaged_source_image_fails_at_import(cloud, tmp_path, leaks, damage):
    source = tmp_path / "prebuilt.qcow2"
    shutil.copyfile(tinyimage.tiny_image("qcow2"), source)
    damage(source)
    pipeline = _pipeline(cloud, tmp_path, extra={"image": {"name": "tinyfleet",
                                                           "source": str(source)}})
    result = pipeline.run(timeout=RUN_TIMEOUT)
    line = the_error(result)
    assert line.startswith(f"imagefleet: {source}: import: "), line
    assert "damaged" in line
    assert result.returncode == 1
    assert_nothing_half_written(pipeline.work)
    assert_cloud_untouched(cloud, HP, leaks)


# --- the work disk fills up ---------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_full_work_disk_is_one_line_and_leaves_no_partial(cloud, tmp_path, leaks):
    pipeline = _pipeline(cloud, tmp_path)
    pipeline.work.mkdir()
    # 12 MiB: the imported base image fits (9.7 MiB of data), its qcow2 does not.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(pipeline.work)],
                   check=True)
    try:
        result = pipeline.run(timeout=RUN_TIMEOUT)
        line = the_error(result)
        assert "no space" in line.lower(), line
        assert_nothing_half_written(pipeline.work, ["images/*/image.qcow2", *STAGE_OUTPUTS[2:]])
    finally:
        subprocess.run(["umount", str(pipeline.work)], check=False)
    assert not os.path.ismount(pipeline.work)
    assert_cloud_untouched(cloud, HP, leaks)
