"""Build the base image once; convert it once per distinct disk format."""

from __future__ import annotations

import json

import luigi

from pipeline.core import atomicfile
from pipeline.core.errors import BuildError
from pipeline.core.formats import EXTENSION
from pipeline.image.build import BUILD_ID_LEN, build_base, plan_build
from pipeline.image.buildcleanup import remove_stale_partials
from pipeline.image.convert import convert_image
from tasks.base import ImagefleetTask, committed


class BuildBaseImage(ImagefleetTask):
    """The raw base image, named by the digest of its inputs."""

    digest = luigi.Parameter()

    @property
    def build_id(self) -> str:
        return self.digest[:BUILD_ID_LEN]

    def output(self):
        return luigi.LocalTarget(str(self.work_dir / "builds" / self.build_id / "base.raw"))

    def run(self):
        plan = plan_build(self.pipeline_config)
        if plan.digest != self.digest:
            raise BuildError("the build's inputs changed since this run was planned; run again")
        out = self.output()
        out.makedirs()
        remove_stale_partials(out.path)
        with committed(out) as tmp:
            record = build_base(plan, tmp, work_dir=self.work_dir,
                                log_path=self.log_path(f"build-{self.build_id}.log"))
            atomicfile.write_text(self.work_dir / "builds" / self.build_id / "build.json",
                                  json.dumps(record, indent=2, sort_keys=True) + "\n")


class ConvertImage(ImagefleetTask):
    """The base image in one disk format; clouds sharing a format share this task."""

    digest = luigi.Parameter()
    disk_format = luigi.ChoiceParameter(choices=sorted(EXTENSION))

    def requires(self):
        return BuildBaseImage(digest=self.digest)

    def output(self):
        build_id = self.digest[:BUILD_ID_LEN]
        name = f"image.{EXTENSION[self.disk_format]}"
        return luigi.LocalTarget(str(self.work_dir / "images" / build_id / name))

    def run(self):
        out = self.output()
        out.makedirs()
        remove_stale_partials(out.path)
        with committed(out) as tmp:
            record = convert_image(self.input().path, tmp, self.disk_format,
                                   log_path=self.log_path(f"convert-{self.disk_format}.log"))
            # The record first: an image never stands without the record it is checked by.
            atomicfile.write_text(out.path + ".json",
                                  json.dumps(record, indent=2, sort_keys=True) + "\n")


class BuildImages(luigi.WrapperTask):
    """``imagefleet build``: every format the selected clouds need, nothing more."""

    digest = luigi.Parameter()
    disk_formats = luigi.ListParameter()

    def requires(self):
        return [ConvertImage(digest=self.digest, disk_format=f) for f in self.disk_formats]
