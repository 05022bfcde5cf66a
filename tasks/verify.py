"""Prove the image boots on each cloud after its upload (the local boot came before)."""

from __future__ import annotations

import json

import luigi

from pipeline.cloud.publishing import standing_verify_record
from pipeline.cloud.verify import verify_image
from tasks.base import CloudTask
from tasks.upload import UploadImage


class VerifyImage(CloudTask):
    """One cloud's test boot of its uploaded image; the output is the JSON record."""

    stage = "verify"

    @property
    def resources(self):
        return {f"verify_{self.cloud}": 1}

    def requires(self):
        return UploadImage(**self.build_params, cloud=self.cloud)

    def output(self):
        return luigi.LocalTarget(str(self.layout.verify_record(self.build_id, self.cloud)))

    def run(self):
        with self.input().open("r") as f:
            upload = json.load(f)
        standing = standing_verify_record(upload)
        if standing is not None:
            with self.output().open("w") as f:
                json.dump(standing, f, indent=2, sort_keys=True)
            return
        image_id = upload["image_id"]
        record = verify_image(self.target_cloud, image_id, self.build_info,
                              work_dir=self.layout.verify_dir(self.build_id),
                              min_disk_gb=int(self.pipeline_config.size),
                              journal_dir=self.layout.journal,
                              check=self.pipeline_config.verify_check)
        with self.output().open("w") as f:
            json.dump(record.to_dict(), f, indent=2, sort_keys=True)
