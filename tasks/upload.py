"""Upload the converted image to one cloud by the mechanism that cloud needs."""

from __future__ import annotations

import json

import luigi

from pipeline.cloud.publishing import publish
from pipeline.image.manifest import Manifest
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
        record = publish(self.target_cloud, self.input()["image"].path, self.build_info,
                         manifest_of=self.manifest_of, metadata=self.pipeline_config.metadata)
        with self.output().open("w") as f:
            json.dump(record, f, indent=2, sort_keys=True)

    def manifest_of(self, build_id: str) -> Manifest | None:
        """A build's content manifest, while the work directory keeps it."""
        try:
            return Manifest.from_dict(json.loads(self.layout.manifest(build_id).read_text()))
        except (OSError, ValueError):
            return None
