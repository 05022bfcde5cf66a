"""Upload the converted image to one cloud by the mechanism that cloud needs."""

from __future__ import annotations

import json

import luigi

from pipeline.cloud.upload import upload_image
from tasks.base import CloudTask
from tasks.build import ConvertImage
from tasks.localboot import LocalBoot


class UploadImage(CloudTask):
    """One cloud's upload; the output is a small JSON record of what arrived."""

    stage = "upload"

    @property
    def resources(self):
        return {f"upload_{self.cloud}": 1}

    def requires(self):
        disk_format = self.target_cloud.disk_format
        return {"image": ConvertImage(**self.build_params, disk_format=disk_format),
                "local_boot": LocalBoot(**self.build_params, disk_format=disk_format)}

    def output(self):
        return luigi.LocalTarget(str(self.layout.upload_record(self.build_id, self.cloud)))

    def run(self):
        record = upload_image(self.target_cloud, self.input()["image"].path, self.build_info,
                              metadata=self.pipeline_config.metadata)
        with self.output().open("w") as f:
            json.dump(record.to_dict(), f, indent=2, sort_keys=True)
