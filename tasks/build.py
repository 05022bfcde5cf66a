"""Build the base image once; convert it once per distinct disk format."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import luigi

from pipeline.core import atomicfile
from pipeline.core.errors import BuildError, ConfigError
from pipeline.core.formats import EXTENSION
from pipeline.image.build import build_base, plan_build
from pipeline.image.buildcleanup import remove_stale_partials
from pipeline.image.convert import compress_qcow2, convert_image
from pipeline.image.manifest import read_manifest
from pipeline.settings.clouds import load_clouds, select_clouds
from pipeline.settings.config import load_profiles
from tasks.base import BuildTask, committed, imagefleet


class BuildBaseImage(BuildTask):
    """The raw base image, named by the digest of its inputs."""

    stage = "build"

    def output(self):
        return luigi.LocalTarget(str(self.layout.base_image(self.build_id)))

    def run(self):
        plan = dataclasses.replace(plan_build(self.pipeline_config), built_at=self.built_at)
        if plan.digest != self.digest:
            raise BuildError("the build's inputs changed since this run was planned; run again")
        out = self.output()
        out.makedirs()
        remove_stale_partials(out.path)
        with committed(out) as tmp:
            record = build_base(plan, tmp, work_dir=self.work_dir,
                                log_path=self.log_path(f"build-{self.build_id}.log"))
            contents = read_manifest(tmp)
            record.update(content=contents.content_digest(plan.digest),
                          packages=len(contents.packages or {}), kernels=contents.kernels)
            atomicfile.write_text(self.layout.manifest(self.build_id),
                                  json.dumps(contents.to_dict(), indent=1, sort_keys=True))
            atomicfile.write_text(self.layout.build_record(self.build_id),
                                  json.dumps(record, indent=2, sort_keys=True) + "\n")


class ConvertImage(BuildTask):
    """The base image in one disk format; clouds sharing a format share this task."""

    stage = "convert"
    disk_format = luigi.ChoiceParameter(choices=sorted(EXTENSION))

    def requires(self):
        return BuildBaseImage(**self.build_params)

    def output(self):
        return luigi.LocalTarget(str(self.layout.converted(self.build_id, self.disk_format)))

    @property
    def compress(self) -> bool:
        """Compressed qcow2 unless a configured qcow2 cloud's profile says no (read each
        time: luigi reuses task instances within a process, the configuration may change)."""
        if self.disk_format != "qcow2":
            return False
        config = self.pipeline_config
        try:
            clouds = select_clouds(config, load_profiles(config.vendors_dir),
                                   load_clouds(imagefleet().clouds_yaml or None))
        except ConfigError:         # `imagefleet build` needs no clouds.yaml
            clouds = []
        return compress_qcow2(c.profile.image.qcow2_compressed for c in clouds
                              if c.disk_format == "qcow2")

    def complete(self) -> bool:
        """Done when the file exists and was written with today's compression choice."""
        if not super().complete():
            return False
        record = self.layout.convert_record(self.build_id, self.disk_format)
        try:
            written = json.loads(record.read_text()).get("compressed", False)
        except (OSError, ValueError):
            return False
        return written == self.compress

    def run(self):
        out = self.output()
        out.makedirs()
        remove_stale_partials(out.path)
        # Written with the other compression choice: the image goes before its record,
        # and its local boot proved the old file, so the new one is booted again.
        Path(out.path).unlink(missing_ok=True)
        self.layout.convert_record(self.build_id, self.disk_format).unlink(missing_ok=True)
        self.layout.local_boot_record(self.build_id, self.disk_format).unlink(missing_ok=True)
        with committed(out) as tmp:
            record = convert_image(self.input().path, tmp, self.disk_format,
                                   log_path=self.log_path(f"convert-{self.disk_format}.log"),
                                   compress=self.compress)
            # The record first: an image never stands without the record it is checked by.
            atomicfile.write_text(self.layout.convert_record(self.build_id, self.disk_format),
                                  json.dumps(record, indent=2, sort_keys=True) + "\n")


class BuildImages(luigi.WrapperTask):
    """``imagefleet build``: every format the selected clouds need, nothing more."""

    digest = luigi.Parameter()
    disk_formats = luigi.ListParameter()

    def requires(self):
        return [ConvertImage(digest=self.digest, disk_format=f) for f in self.disk_formats]
