"""The whole run: every selected cloud built, converted, uploaded and verified."""

from __future__ import annotations

import datetime
import json

import luigi

from pipeline.cloud.retention import apply_retention
from pipeline.image.build import BUILD_ID_LEN
from tasks.base import ImagefleetTask, planned_run
from tasks.verify import VerifyImage


class Publish(luigi.WrapperTask):
    """``imagefleet run``: one night's publication; the date makes each night distinct.

    ``luigi --module tasks Publish --date D`` plans the rest from pipeline.yaml
    and clouds.yaml (``[imagefleet]`` in luigi.cfg), as ``imagefleet run`` does.
    """

    date = luigi.DateParameter(default=datetime.date.today())
    digest = luigi.Parameter(default="", description="build digest (default: planned now)")
    clouds = luigi.ListParameter(default=(), description="clouds (default: every configured)")

    def requires(self):
        digest, clouds = self.digest, list(self.clouds)
        if not (digest and clouds):
            planned_digest, planned_clouds = planned_run()
            digest, clouds = digest or planned_digest, clouds or planned_clouds
        return [RetainImages(digest=digest, cloud=c) for c in clouds]


class RetainImages(ImagefleetTask):
    """After a good verify, keep the newest N of our images in the cloud."""

    digest = luigi.Parameter()
    cloud = luigi.Parameter()

    def failure_where(self) -> str:
        return self.cloud

    def requires(self):
        return VerifyImage(digest=self.digest, cloud=self.cloud)

    def output(self):
        build_id = self.digest[:BUILD_ID_LEN]
        return luigi.LocalTarget(str(self.work_dir / "retention" / build_id /
                                     f"{self.cloud}.json"))

    def run(self):
        with self.input().open("r") as f:
            current = json.load(f)["image_id"]
        cloud = self.target_cloud
        keep = int(cloud.profile.retention.keep or self.pipeline_config.keep)
        result = apply_retention(cloud, keep=keep, image_name=self.pipeline_config.image_name,
                                 current_id=current)
        with self.output().open("w") as f:
            json.dump({"keep": keep, "kept": current, **result.to_dict()}, f, indent=2)
