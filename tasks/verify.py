"""Prove the image boots: locally in qemu before any upload, then on each cloud after it."""

from __future__ import annotations

import json

import luigi

from pipeline.cloud.localboot import local_boot
from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.mechanism import upload_priority
from pipeline.cloud.verify import verify_image
from pipeline.core.formats import EXTENSION
from pipeline.image.build import BUILD_ID_LEN
from pipeline.image.vm import ACCEL_CACHE
from tasks.base import ImagefleetTask
from tasks.build import ConvertImage


class localboot(luigi.Config):  # noqa: N801 - luigi names config sections by class
    """``[localboot]``: how long a local qemu boot may take to answer (TCG is slow)."""

    timeout = luigi.FloatParameter(default=900.0)


class LocalBoot(ImagefleetTask):
    """One converted file booted in qemu here, with the check a cloud boot gets."""

    digest = luigi.Parameter()
    disk_format = luigi.ChoiceParameter(choices=sorted(EXTENSION))

    @property
    def resources(self):
        return {"qemu": 1}

    @property
    def build_id(self) -> str:
        return self.digest[:BUILD_ID_LEN]

    def failure_where(self) -> str:
        return f"local {self.disk_format}"

    def requires(self):
        return ConvertImage(digest=self.digest, disk_format=self.disk_format)

    def output(self):
        return luigi.LocalTarget(str(self.work_dir / "localboot" / self.build_id /
                                     f"{self.disk_format}.json"))

    def run(self):
        config = self.pipeline_config
        record = local_boot(self.input().path, self.disk_format, self.build_id,
                            work_dir=self.work_dir / "localboot" / self.build_id,
                            timeout=localboot().timeout, accel_setting=config.accel,
                            accel_cache=self.work_dir / ACCEL_CACHE,
                            stall_timeout=config.accel_stall_timeout,
                            login=config.verify_check == "build-id")
        with self.output().open("w") as f:
            json.dump(record, f, indent=2, sort_keys=True)


class VerifyImage(ImagefleetTask):
    """One cloud's test boot of its uploaded image; the output is the JSON record."""

    digest = luigi.Parameter()
    cloud = luigi.Parameter()

    @property
    def resources(self):
        return {f"verify_{self.cloud}": 1}

    @property
    def priority(self):
        return upload_priority(self.target_cloud.profile.image.upload)

    @property
    def build_id(self) -> str:
        return self.digest[:BUILD_ID_LEN]

    def failure_where(self) -> str:
        return self.cloud

    def requires(self):
        from tasks.upload import UploadImage  # upload imports LocalBoot from here
        return UploadImage(digest=self.digest, cloud=self.cloud)

    def output(self):
        return luigi.LocalTarget(str(self.work_dir / "verify" / self.build_id /
                                     f"{self.cloud}.json"))

    def run(self):
        with self.input().open("r") as f:
            image_id = json.load(f)["image_id"]
        build = BuildInfo(build_id=self.build_id, digest=self.digest,
                          image_name=self.pipeline_config.image_name)
        record = verify_image(self.target_cloud, image_id, build,
                              work_dir=self.work_dir / "verify" / self.build_id,
                              min_disk_gb=int(self.pipeline_config.size),
                              journal_dir=self.work_dir / "journal",
                              login=self.pipeline_config.verify_check == "build-id")
        with self.output().open("w") as f:
            json.dump(record.to_dict(), f, indent=2, sort_keys=True)
