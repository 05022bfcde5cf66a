"""The base task: work directory, configuration access and the failure report."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import luigi

from pipeline.core import atomicfile
from pipeline.core.errors import PipelineError
from pipeline.run import ledger
from pipeline.settings.clouds import Cloud, load_clouds, select_clouds
from pipeline.settings.config import PipelineConfig, load_pipeline, load_profiles

LOG = logging.getLogger("imagefleet.tasks")


class imagefleet(luigi.Config):  # noqa: N801 - luigi names config sections by class
    """``[imagefleet]`` in luigi.cfg; the CLI sets the same keys from its options."""

    work_dir = luigi.Parameter(default="work")
    config = luigi.Parameter(default="config/pipeline.yaml")
    clouds_yaml = luigi.Parameter(default="")


@contextlib.contextmanager
def committed(target: luigi.LocalTarget) -> Iterator[str]:
    """Luigi's ``temporary_path``, minus the partial file it keeps when the body fails
    (a full disk, a failed command): only a finished output ever gets the real name."""
    with target.temporary_path() as tmp:
        try:
            yield tmp
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def planned_run() -> tuple[str, list[str]]:
    """The build digest and the cloud names the configuration selects today."""
    from pipeline.image.build import plan_build  # DIB version probing only when planning
    config = load_pipeline(imagefleet().config)
    clouds = load_clouds(imagefleet().clouds_yaml or None)
    selected = select_clouds(config, load_profiles(config.vendors_dir), clouds)
    return plan_build(config).digest, [c.name for c in selected]


class ImagefleetTask(luigi.Task):
    """Every task's base: knows where work goes and records why it failed."""

    @property
    def work_dir(self) -> Path:
        return Path(imagefleet().work_dir).resolve()

    @cached_property
    def pipeline_config(self) -> PipelineConfig:
        return load_pipeline(imagefleet().config)

    def cloud_named(self, name: str) -> Cloud:
        """The cloud ``name`` with its profile; credentials are read here, never passed in."""
        config = self.pipeline_config
        clouds = load_clouds(imagefleet().clouds_yaml or None)
        (cloud,) = select_clouds(config, load_profiles(config.vendors_dir), clouds, only=[name])
        return cloud

    @cached_property
    def target_cloud(self) -> Cloud:
        """The cloud of a task with a ``cloud`` parameter, read once per task instance
        (``requires``, ``priority`` and ``run`` all ask)."""
        return self.cloud_named(self.cloud)

    def log_path(self, name: str) -> Path:
        path = self.work_dir / "logs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def failure_where(self) -> str | None:
        """The cloud (or file) a failure of this task is about; tasks override."""
        return None

    def on_failure(self, exception: BaseException) -> str:
        """Record a one-line reason for the CLI and the report; luigi shows it in the UI."""
        if isinstance(exception, PipelineError):
            exception.at(where=self.failure_where())
            line = str(exception)
        else:
            line = f"{self.failure_where() or self.task_family}: {type(exception).__name__}: {exception}"
        failures = self.work_dir / "failures"
        record = {"task_id": self.task_id, "task": self.task_family, "error": line,
                  "where": self.failure_where(), "time": time.time()}
        try:
            failures.mkdir(parents=True, exist_ok=True)
            atomicfile.write_text(failures / f"{self.task_id}.json", json.dumps(record) + "\n")
        except OSError as e:      # a full work disk: the scheduler still has the line
            LOG.warning("cannot record the failure of %s: %s", self.task_id, e)
        LOG.error("%s failed: %s", self.task_id, line, exc_info=exception)
        return line

    def on_success(self) -> None:
        stale = self.work_dir / "failures" / f"{self.task_id}.json"
        stale.unlink(missing_ok=True)
        ledger.record(self.work_dir, self.task_id, self.task_family)
