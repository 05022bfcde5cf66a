"""The build stage: what to build (a digest of every input) and building it once."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.core.errors import BuildError, ConfigError
from pipeline.image import buildcleanup, dib, freespace, imagesource, qemu_img
from pipeline.image.buildid import build_id
from pipeline.settings.config import PipelineConfig

LOG = logging.getLogger(__name__)

ELEMENTS_DIR = Path(__file__).resolve().parents[2] / "elements"
@dataclass(frozen=True)
class BuildPlan:
    """Everything that defines the base image; ``digest`` names it."""

    digest: str
    spec: dib.DibSpec
    source: Path | None = None          # a prebuilt image instead of a DIB build
    source_format: str | None = None
    built_at: str = ""                  # the build's time: each rebuild is a new build id
    timeout: float = dib.BUILD_TIMEOUT  # build.timeout: not an input, not in the digest
    command: str | None = None          # build.command: disk-image-create to run

    @property
    def build_id(self) -> str:
        return build_id(self.digest, self.built_at)


def plan_build(config: PipelineConfig, elements_dir: Path = ELEMENTS_DIR) -> BuildPlan:
    """Digest the build's inputs (elements' content, config, release, DIB version).

    With ``image.source`` the inputs are the prebuilt file's content and format.
    """
    if config.source is not None:
        spec = dib.DibSpec(name=config.image_name, elements=(), size=config.size)
        digest = imagesource.source_digest(config.source, config.source_format,
                                           config.image_name)
        return BuildPlan(digest=digest, spec=spec, source=config.source,
                         source_format=config.source_format, timeout=config.build_timeout,
                         command=config.build_command)
    spec = dib.resolve_spec(dib.DibSpec(
        name=config.image_name, elements=tuple(config.elements), release=config.release,
        environment=dict(config.environment), mirror=config.mirror, size=config.size))
    try:
        dib.check_elements(spec.elements, [elements_dir, dib.dib_elements_dir()],
                           [elements_dir])
    except ConfigError as e:         # the element list comes from the pipeline file
        raise e.at(where=str(config.path)) from None
    digest = dib.build_digest(spec, [elements_dir])
    return BuildPlan(digest=digest, spec=spec, timeout=config.build_timeout,
                     command=config.build_command)


def build_base(plan: BuildPlan, dest: Path, *, work_dir: Path, log_path: Path,
               progress=None) -> dict:
    """Build the raw base image into ``dest`` (a temporary path the caller renames)."""
    if plan.source is not None:
        if imagesource.source_digest(plan.source, plan.source_format,
                                     plan.spec.name) != plan.digest:
            raise BuildError("the prebuilt image changed since this run was planned; run again",
                             where=str(plan.source), step="import")
        record = imagesource.import_source(plan.source, plan.source_format, Path(dest),
                                           log_path=log_path)
        return {**record, "build_id": plan.build_id, "digest": plan.digest,
                "built_at": plan.built_at}
    started = time.monotonic()
    spec = dib.DibSpec(**{**asdict(plan.spec), "build_id": plan.build_id})
    # A run killed mid-build left its scratch dir, mounts and loop devices: release them.
    for released in buildcleanup.release_stale_builds(Path(work_dir) / "tmp", plan.build_id,
                                                      log_path=log_path):
        LOG.warning("released after a killed build: %s", released)
    scratch = Path(work_dir) / "tmp" / buildcleanup.scratch_name(plan.build_id, os.getpid())
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        built = dib.build_image(spec, scratch, work_dir=Path(work_dir), log_path=log_path,
                                progress=progress or _log_phase, timeout=plan.timeout,
                                command=plan.command)
        info = qemu_img.info(built, "raw")
        if info.get("virtual-size", 0) <= 0:
            raise BuildError(f"diskimage-builder produced an empty image ({built})")
        space = freespace.trim_and_measure(built, log_path=log_path)
        shutil.move(str(built), str(dest))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {"build_id": plan.build_id, "digest": plan.digest, "built_at": plan.built_at,
              "virtual_size": info["virtual-size"], "seconds": round(time.monotonic() - started, 1),
              "spec": asdict(spec), "log": str(log_path), "space": space}
    LOG.info("built %s in %.0f s", dest, record["seconds"])
    return record


def _log_phase(line: str) -> None:
    LOG.info("%s", line)
