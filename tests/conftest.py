"""Shared test helpers: paths, a config tree in tmp_path, clouds.yaml writing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests import summaries, xdist_groups
from tests.built_image import REPO, base_image  # noqa: F401 - the slow tier's session fixture


def pytest_collection_modifyitems(config, items):
    xdist_groups.check(items)


def pytest_sessionstart(session):
    summaries.sessionstart(session)


def pytest_runtest_logreport(report):
    summaries.logreport(report)


def pytest_terminal_summary(terminalreporter):
    summaries.terminal_summary(terminalreporter)


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadscope":
        return xdist_groups.make_scheduler(config, log)
    return None


@pytest.fixture
def config_tree(tmp_path: Path) -> Path:
    """A copy of config/ (pipeline.yaml + vendors) that a test may break."""
    dest = tmp_path / "config"
    shutil.copytree(REPO / "config", dest)
    return dest


def write_clouds_yaml(path: Path, clouds: dict) -> Path:
    path.write_text(yaml.safe_dump({"clouds": clouds}, sort_keys=False))
    return path


def cloud_entry(profile: str, **extra) -> dict:
    """A clouds.yaml entry naming imagefleet profile ``profile`` (under ``imagefleet:``)."""
    entry = {"imagefleet": {"profile": profile}, "auth_type": "password",
             "region_name": "RegionOne",
             "auth": {"auth_url": "http://127.0.0.1:1/v3", "username": "demo",
                      "password": "s3cret-pass", "project_name": "demo",
                      "user_domain_name": "Default", "project_domain_name": "Default"}}
    entry.update(extra)
    return entry
