"""Prove the converted image boots here, in qemu, before any cloud gets it."""

from __future__ import annotations

import json

import luigi

from pipeline.cloud.localboot import local_boot
from pipeline.core.formats import EXTENSION
from tasks.base import ConversionTask
from tasks.build import ConvertImage


class localboot(luigi.Config):  # noqa: N801 - luigi names config sections by class
    """``[localboot]``: how long a local qemu boot may take to answer (TCG is slow)."""

    timeout = luigi.FloatParameter(default=900.0)


class LocalBoot(ConversionTask):
    """One converted file booted in qemu here, with the check a cloud boot gets."""

    stage = "local_boot"
    disk_format = luigi.ChoiceParameter(choices=sorted(EXTENSION))

    @property
    def resources(self):
        return {"qemu": 1}

    def failure_where(self) -> str:
        return f"local {self.disk_format}"

    def requires(self):
        return ConvertImage(**self.build_params, disk_format=self.disk_format)

    def output(self):
        return luigi.LocalTarget(str(self.layout.local_boot_record(self.build_id,
                                                                   self.disk_format)))

    def run(self):
        config = self.pipeline_config
        record = local_boot(self.input().path, self.disk_format, self.build_id,
                            work_dir=self.layout.local_boot_dir(self.build_id),
                            timeout=localboot().timeout, accel_setting=config.accel,
                            accel_cache=self.layout.accel_cache,
                            stall_timeout=config.accel_stall_timeout,
                            login=config.local_login)
        with self.output().open("w") as f:
            json.dump(record, f, indent=2, sort_keys=True)
