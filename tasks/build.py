"""Build the base image once; convert it once per distinct disk format."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import luigi

from pipeline.core import atomicfile
from pipeline.core.errors import BuildError, PipelineError
from pipeline.core.formats import EXTENSION
from pipeline.image.build import build_base, plan_build
from pipeline.image.buildcleanup import remove_stale_partials
from pipeline.image.convert import compressed_payload, convert_image, gzip_path
from pipeline.image.manifest import read_manifest
from tasks.base import DEFAULT_COMPRESSED, BuildTask, ConversionTask, committed


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


class ConvertImage(ConversionTask):
    """The base image in one disk format; clouds sharing a format share this task.

    Whether it is written compressed is the ``compressed`` parameter, planned with the
    run (``planned_compression``): ``complete`` reads only the work directory.
    """

    stage = "convert"
    disk_format = luigi.ChoiceParameter(choices=sorted(EXTENSION))

    def requires(self):
        return BuildBaseImage(digest=self.digest, built_at=self.built_at)

    def output(self):
        return luigi.LocalTarget(str(self.layout.converted(self.build_id, self.disk_format)))

    @property
    def compress(self) -> bool:
        return self.disk_format in self.compressed

    def complete(self) -> bool:
        """Done when the file exists and was written with this run's compression choice."""
        if not super().complete():
            return False
        record = self.layout.convert_record(self.build_id, self.disk_format)
        try:
            written = json.loads(record.read_text()).get("compressed", False)
            gzip_ok = (compressed_payload(self.output().path) is not None
                       or not (self.compress and self.disk_format == "raw"))
        except (OSError, ValueError, PipelineError):
            return False
        return written == self.compress and gzip_ok

    def run(self):
        out = self.output()
        out.makedirs()
        remove_stale_partials(out.path)
        # Written with the other compression choice: the image goes before its record,
        # and its local boot proved the old file, so the new one is booted again.
        Path(out.path).unlink(missing_ok=True)
        gzip_path(out.path).unlink(missing_ok=True)
        self.layout.convert_record(self.build_id, self.disk_format).unlink(missing_ok=True)
        self.layout.local_boot_record(self.build_id, self.disk_format).unlink(missing_ok=True)
        with committed(out) as tmp:
            record = convert_image(self.input().path, tmp, self.disk_format,
                                   log_path=self.log_path(f"convert-{self.disk_format}.log"),
                                   compress=self.compress, gzip_dest=gzip_path(out.path))
            # The record first: an image never stands without the record it is checked by.
            atomicfile.write_text(self.layout.convert_record(self.build_id, self.disk_format),
                                  json.dumps(record, indent=2, sort_keys=True) + "\n")


class BuildImages(luigi.WrapperTask):
    """``imagefleet build``: every format the selected clouds need, nothing more."""

    digest = luigi.Parameter()
    disk_formats = luigi.ListParameter()
    compressed = luigi.ListParameter(default=DEFAULT_COMPRESSED)

    def requires(self):
        return [ConvertImage(digest=self.digest, disk_format=f, compressed=self.compressed)
                for f in self.disk_formats]
