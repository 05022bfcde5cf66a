"""The whole run: every selected cloud built, converted, uploaded and verified."""

from __future__ import annotations

import datetime
import json

import luigi

from pipeline.cloud.fleet import promote
from pipeline.cloud.retention import apply_retention
from tasks.base import CloudTask, planned_compression, planned_run, selected_clouds
from tasks.verify import VerifyImage


def today() -> datetime.date:
    return datetime.date.today()


class TodayParameter(luigi.DateParameter):
    """A date that defaults to the day the task is made, not the day its module was
    imported: a long-lived worker must not keep publishing yesterday's run."""

    def __init__(self, **kwargs):
        super().__init__(default=None, **kwargs)

    def normalize(self, x):
        return super().normalize(today() if x is None else x)


class Publish(luigi.WrapperTask):
    """``imagefleet run``: one night's publication; the date makes each night distinct.

    ``luigi --module tasks Publish --date D`` plans the rest from pipeline.yaml
    and clouds.yaml (``[imagefleet]`` in luigi.cfg), as ``imagefleet run`` does.
    """

    date = TodayParameter()
    digest = luigi.Parameter(default="", description="build digest (default: planned now)")
    built_at = luigi.Parameter(default="", description="build time (default: planned now)")
    clouds = luigi.ListParameter(default=(), description="clouds (default: every configured)")
    compressed = luigi.OptionalListParameter(
        default=None, description="formats written compressed (default: planned now)")

    def requires(self):
        digest, built_at, clouds = self.digest, self.built_at, list(self.clouds)
        compressed = self.compressed
        if not (digest and clouds):
            planned_digest, planned_at, planned_clouds, planned_compressed = planned_run()
            if not digest:
                digest, built_at = planned_digest, planned_at
            if not clouds:
                clouds, compressed = planned_clouds, (
                    planned_compressed if compressed is None else compressed)
        if compressed is None:
            compressed = planned_compression(selected_clouds(only=clouds))
        return [RetainImages(digest=digest, built_at=built_at, cloud=c,
                             compressed=tuple(compressed)) for c in clouds]


class RetainImages(CloudTask):
    """After a good verify, keep the newest N of our images in the cloud."""

    stage = "retention"

    def requires(self):
        return VerifyImage(**self.build_params, cloud=self.cloud)

    def output(self):
        return luigi.LocalTarget(str(self.layout.retention_record(self.build_id, self.cloud)))

    def run(self):
        with self.input().open("r") as f:
            current = json.load(f)["image_id"]
        cloud = self.target_cloud
        keep = int(cloud.profile.retention.keep or self.pipeline_config.keep)
        config = self.pipeline_config
        result = apply_retention(cloud, keep=keep, image_name=config.image_name,
                                 current_id=current)
        promoted = []
        if config.stable_name:          # verified now: it takes the stable name
            promoted = [c.image.id for c in promote(cloud, stable_name=config.stable_name,
                                                    image_name=config.image_name,
                                                    image_id=current)]
        with self.output().open("w") as f:
            json.dump({"keep": keep, "kept": current, "stable_name": config.stable_name,
                       "renamed": promoted, **result.to_dict()}, f, indent=2)
