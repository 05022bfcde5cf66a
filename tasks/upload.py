"""Upload the converted image to one cloud by the mechanism that cloud needs."""

from __future__ import annotations

import json

import luigi

from pipeline.cloud.marks import BuildInfo
from pipeline.cloud.mechanism import upload_priority
from pipeline.cloud.upload import upload_image
from pipeline.image.build import BUILD_ID_LEN
from tasks.base import ImagefleetTask
from tasks.build import ConvertImage
from tasks.verify import LocalBoot


class UploadImage(ImagefleetTask):
    """One cloud's upload; the output is a small JSON record of what arrived."""

    digest = luigi.Parameter()
    cloud = luigi.Parameter()

    @property
    def resources(self):
        return {f"upload_{self.cloud}": 1}

    @property
    def priority(self):
        return upload_priority(self.target_cloud.profile.image.upload)

    def failure_where(self) -> str:
        return self.cloud

    def requires(self):
        disk_format = self.target_cloud.disk_format
        return {"image": ConvertImage(digest=self.digest, disk_format=disk_format),
                "local_boot": LocalBoot(digest=self.digest, disk_format=disk_format)}

    def output(self):
        build_id = self.digest[:BUILD_ID_LEN]
        return luigi.LocalTarget(str(self.work_dir / "uploads" / build_id / f"{self.cloud}.json"))

    def run(self):
        build = BuildInfo(build_id=self.digest[:BUILD_ID_LEN], digest=self.digest,
                          image_name=self.pipeline_config.image_name)
        record = upload_image(self.target_cloud, self.input()["image"].path, build,
                              metadata=self.pipeline_config.metadata)
        with self.output().open("w") as f:
            json.dump(record.to_dict(), f, indent=2, sort_keys=True)
