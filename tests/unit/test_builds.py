"""Rebuild by age: which build a run publishes, by the run's clock."""

from __future__ import annotations

import json

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.image.buildid import BUILD_ID_LEN, build_id
from pipeline.run import builds
from pipeline.run.workdir import WorkDir
from pipeline.settings.config import load_pipeline

DIGEST = "ab" * 32
T0 = "2026-11-29T02:00:00Z"


@pytest.mark.parametrize("last, now, age, force, due", [
    (None, "2026-11-29T02:00:00Z", 24, False, True),           # never built
    (T0, "2026-11-29T20:00:00Z", 24, False, False),            # 18 h old
    (T0, "2026-11-30T02:00:00Z", 24, False, True),             # exactly the age
    (T0, "2026-11-30T01:59:59Z", 24, False, False),
    (T0, "2026-11-29T03:00:00Z", 0.5, False, True),            # a short age
    (T0, "2026-11-29T02:00:01Z", 24, True, True),              # --rebuild
    (T0, "2026-11-28T02:00:00Z", 24, False, False),            # a clock behind the build
    (T0, "2026-11-29T10:00:00+08:00", 24, False, False),       # an offset is honoured
])
def test_rebuild_due(last, now, age, force, due):
    assert builds.rebuild_due(last, builds.parse_time(now), age, force) is due


def test_build_id_has_the_build_time_in_it():
    assert build_id(DIGEST) == DIGEST[:BUILD_ID_LEN]       # no time: the digest's prefix
    night1, night2 = build_id(DIGEST, T0), build_id(DIGEST, "2026-11-30T02:00:00Z")
    assert night1 != night2 and len(night1) == len(night2) == BUILD_ID_LEN
    assert build_id(DIGEST, T0) == night1


def test_the_clock_comes_from_the_option_then_the_environment(monkeypatch):
    monkeypatch.setenv(builds.NOW_ENV, "2026-11-30T03:00:00")
    assert builds.stamp(builds.now()) == "2026-11-30T03:00:00Z"
    assert builds.stamp(builds.now("2026-12-01T00:00:00Z")) == "2026-12-01T00:00:00Z"
    with pytest.raises(ConfigError, match="--now: not an ISO 8601 time"):
        builds.now("tomorrow")


def _finished_build(layout: WorkDir, digest: str, built_at: str) -> str:
    bid = build_id(digest, built_at)
    layout.build_dir(bid).mkdir(parents=True, exist_ok=True)
    layout.base_image(bid).write_bytes(b"x")
    layout.build_record(bid).write_text(json.dumps(
        {"build_id": bid, "digest": digest, "built_at": built_at}))
    return bid


def test_choose_keeps_a_young_build_and_replaces_an_old_one(tmp_path):
    layout = WorkDir(tmp_path)
    at = builds.parse_time
    assert builds.choose_built_at(layout, DIGEST, at(T0), 24) == T0       # nothing built yet
    _finished_build(layout, DIGEST, T0)
    _finished_build(layout, "cd" * 32, "2026-11-29T12:00:00Z")             # other inputs
    assert builds.choose_built_at(layout, DIGEST, at("2026-11-29T23:00:00Z"), 24) == T0
    assert (builds.choose_built_at(layout, DIGEST, at("2026-11-29T23:00:00Z"), 24, force=True)
            == "2026-11-29T23:00:00Z")
    assert (builds.choose_built_at(layout, DIGEST, at("2026-11-30T02:30:00Z"), 24)
            == "2026-11-30T02:30:00Z")
    # A build whose image is gone (pruned, or killed before its record) is not reused.
    layout.base_image(build_id(DIGEST, T0)).unlink()
    assert (builds.choose_built_at(layout, DIGEST, at("2026-11-29T23:00:00Z"), 24)
            == "2026-11-29T23:00:00Z")


def test_rebuild_age_setting(config_tree):
    path = config_tree / "pipeline.yaml"
    assert load_pipeline(path).rebuild_age == 24
    data = yaml.safe_load(path.read_text())
    data["rebuild_age"] = 6.5
    path.write_text(yaml.safe_dump(data))
    assert load_pipeline(path).rebuild_age == 6.5
    data["rebuild_age"] = -1
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="rebuild_age"):
        load_pipeline(path)


def test_a_build_named_by_its_digest_alone_is_reused_while_young(tmp_path):
    """``imagefleet build`` (or luigi directly) makes a build without a build time: a run
    within rebuild_age of it publishes that build rather than building again."""
    layout = WorkDir(tmp_path)
    bid = _finished_build(layout, DIGEST, "")
    made = builds.build_records(layout)[0]["made"]
    assert bid == DIGEST[:BUILD_ID_LEN]
    assert builds.choose_built_at(layout, DIGEST, builds.parse_time(made), 24) == ""


def test_prune_keeps_the_newest_and_the_published_build(tmp_path):
    from pipeline.run.prune import prune
    layout = WorkDir(tmp_path)
    ids = [_finished_build(layout, DIGEST, f"2026-11-2{n}T02:00:00Z") for n in range(1, 6)]
    for bid in ids:
        image = layout.converted(bid, "qcow2")
        image.parent.mkdir(parents=True)
        image.write_bytes(b"q")
        layout.log(f"build-{bid}.log").parent.mkdir(parents=True, exist_ok=True)
        layout.log(f"build-{bid}.log").write_text("log")
        layout.manifest(bid).write_text("{}")
    assert prune(layout, keep=2, protect={ids[0]}) == ids[1:3]
    for bid in ids[1:3]:
        assert not layout.base_image(bid).exists() and not layout.converted(bid, "qcow2").exists()
        assert not layout.log(f"build-{bid}.log").exists()
        assert layout.manifest(bid).exists() and layout.build_record(bid).exists()
    for bid in (ids[0], *ids[3:]):
        assert layout.base_image(bid).exists() and layout.converted(bid, "qcow2").exists()
    assert prune(layout, keep=2, protect=set()) == [ids[0]]


def test_work_build_and_paused_settings(config_tree):
    path = config_tree / "pipeline.yaml"
    config = load_pipeline(path)
    assert (config.keep_local, config.build_timeout, config.build_command, config.paused,
            config.stable_name) == (3, 3600, None, [], None)
    data = yaml.safe_load(path.read_text())
    data.update(work={"keep": 5}, build={"timeout": 900, "command": "/opt/dib/bin/dic"},
                paused=["hp-like"])
    data["image"]["stable_name"] = "Debian 12"
    path.write_text(yaml.safe_dump(data))
    config = load_pipeline(path)
    assert (config.keep_local, config.build_timeout, config.build_command, config.paused,
            config.stable_name) == (5, 900, "/opt/dib/bin/dic", ["hp-like"], "Debian 12")
    data["work"] = {"keep": 0}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="work.keep"):
        load_pipeline(path)


def test_a_run_killed_mid_build_resumes_the_same_build(tmp_path):
    """The build a run chose is claimed before it starts: a rerun within rebuild_age
    continues it (its partial files and scratch are found by its id) instead of starting
    a build of another id."""
    layout = WorkDir(tmp_path)
    at = builds.parse_time
    chosen = builds.choose_built_at(layout, DIGEST, at(T0), 24)
    builds.claim(layout, DIGEST, chosen)
    assert builds.choose_built_at(layout, DIGEST, at("2026-11-29T02:10:00Z"), 24) == T0
    assert builds.choose_built_at(layout, DIGEST, at("2026-11-30T02:10:00Z"), 24) != T0
    # once finished and later pruned, the claim no longer holds it
    _finished_build(layout, DIGEST, T0)
    layout.base_image(build_id(DIGEST, T0)).unlink()
    assert builds.choose_built_at(layout, DIGEST, at("2026-11-29T02:10:00Z"), 24) != T0
