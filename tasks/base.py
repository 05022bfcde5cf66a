"""The base task: work directory, configuration access and the failure report."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import luigi

from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.mechanism import upload_priority
from pipeline.core.errors import PipelineError
from pipeline.image.build import plan_build
from pipeline.image.buildid import build_id
from pipeline.image.convert import compressed_formats
from pipeline.run import builds, failures, ledger
from pipeline.run.workdir import WorkDir
from pipeline.settings.clouds import Cloud, load_clouds, select_clouds
from pipeline.settings.config import PipelineConfig, load_pipeline, load_profiles

LOG = logging.getLogger("imagefleet.tasks")
DEFAULT_COMPRESSED = compressed_formats([])   # no cloud at all: `imagefleet build --format`


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


def planned_compression(clouds: Iterable[Cloud]) -> tuple[str, ...]:
    """The formats written compressed for these clouds: a ``ConvertImage`` parameter,
    decided here once, when the run is planned (``compressed_formats``)."""
    return compressed_formats((c.disk_format, c.profile.image) for c in clouds)


def selected_clouds(only: Iterable[str] | None = None) -> list[Cloud]:
    """The clouds the configuration selects (``only``: these), read through openstacksdk."""
    config = load_pipeline(imagefleet().config)
    clouds = load_clouds(imagefleet().clouds_yaml or None)
    return select_clouds(config, load_profiles(config.vendors_dir), clouds,
                         only=list(only) if only is not None else None)


def planned_run() -> tuple[str, str, list[str], tuple[str, ...]]:
    """The build digest, its build time (the last build's, or now when a rebuild is due),
    the cloud names the configuration selects today and the formats written compressed."""
    config = load_pipeline(imagefleet().config)
    selected = [c for c in selected_clouds() if c.name not in config.paused]
    digest = plan_build(config).digest
    layout = WorkDir(Path(imagefleet().work_dir).resolve())
    built_at = builds.choose_built_at(layout, digest, builds.now(), config.rebuild_age)
    builds.claim(layout, digest, built_at)
    return digest, built_at, [c.name for c in selected], planned_compression(selected)


class ImagefleetTask(luigi.Task):
    """Every task's base: knows where work goes and records why it failed."""

    stage: str          # what a failure of this task stopped: "build", "upload", ...

    @property
    def work_dir(self) -> Path:
        return Path(imagefleet().work_dir).resolve()

    @property
    def layout(self) -> WorkDir:
        return WorkDir(self.work_dir)

    @cached_property
    def pipeline_config(self) -> PipelineConfig:
        return load_pipeline(imagefleet().config)

    def cloud_named(self, name: str) -> Cloud:
        """The cloud ``name`` with its profile; credentials are read here, never passed in."""
        config = self.pipeline_config
        clouds = load_clouds(imagefleet().clouds_yaml or None)
        (cloud,) = select_clouds(config, load_profiles(config.vendors_dir), clouds, only=[name])
        return cloud

    def log_path(self, name: str) -> Path:
        path = self.layout.log(name)
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
        # The cloud and format it stops are the task's own parameters (none: every one).
        failure = failures.Failure(
            task_id=self.task_id, stage=self.stage, error=line, where=self.failure_where(),
            cloud=self.param_kwargs.get("cloud"), disk_format=self.param_kwargs.get("disk_format"),
            started=getattr(self, "started_at", None))
        try:
            failures.record(self.layout, failure)
        except OSError as e:      # a full work disk: the scheduler still has the line
            LOG.warning("cannot record the failure of %s: %s", self.task_id, e)
        LOG.error("%s failed: %s", self.task_id, line, exc_info=exception)
        return line

    def on_success(self) -> None:
        failures.clear(self.layout, self.task_id)
        ledger.record(self.work_dir, self.task_id, self.task_family,
                      started=getattr(self, "started_at", None),
                      cloud=self.param_kwargs.get("cloud"),
                      disk_format=self.param_kwargs.get("disk_format"))


@ImagefleetTask.event_handler(luigi.Event.START)
def _note_start(task: ImagefleetTask) -> None:
    """When the task began running: its bar on the report's timeline starts here."""
    task.started_at = time.time()


class BuildTask(ImagefleetTask):
    """A task about one build: the digest of its inputs and the time it was made
    (``""``: the digest alone names it, as ``imagefleet build`` does)."""

    digest = luigi.Parameter()
    built_at = luigi.Parameter(default="", description="the build's time (ISO 8601, UTC)")

    @property
    def build_id(self) -> str:
        return build_id(self.digest, self.built_at)

    @property
    def build_params(self) -> dict[str, Any]:
        """What names this build to the tasks it requires."""
        return {"digest": self.digest, "built_at": self.built_at}


class ConversionTask(BuildTask):
    """A task about a build's converted files (their conversion, boot, upload): which
    formats are written compressed is planned once for the run and passed down."""

    compressed = luigi.ListParameter(
        default=DEFAULT_COMPRESSED,
        description="disk formats written compressed (planned from the clouds' profiles)")

    @property
    def build_params(self) -> dict[str, Any]:
        return {**super().build_params, "compressed": tuple(self.compressed)}


class CloudTask(ConversionTask):
    """One build on one cloud (upload, verify, retention): ordered by the cloud's upload."""

    cloud = luigi.Parameter()

    @cached_property
    def target_cloud(self) -> Cloud:
        """The cloud, read once per task instance (``requires``, ``priority`` and ``run``
        all ask)."""
        return self.cloud_named(self.cloud)

    @property
    def priority(self):
        return upload_priority(self.target_cloud.profile.image.upload)

    @property
    def build_record(self) -> dict:
        """The build's record (``BuildBaseImage``): its time, content digest, kernels."""
        try:
            return json.loads(self.layout.build_record(self.build_id).read_text())
        except (OSError, ValueError):
            return {}

    @property
    def build_info(self) -> BuildInfo:
        return BuildInfo(build_id=self.build_id, digest=self.digest,
                         image_name=self.pipeline_config.image_name,
                         content=self.build_record.get("content", ""))

    def failure_where(self) -> str:
        return self.cloud
