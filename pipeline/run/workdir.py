"""The work directory's layout: the one place that spells where a run's files live.

Tasks name their outputs here, the report and the CLI read them back from here,
and cleanup finds the journal here (nodepool's ``DibImageFile(...).to_path()``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.formats import EXTENSION
from pipeline.image.vm import ACCEL_CACHE
from pipeline.settings.clouds import file_name


@dataclass(frozen=True)
class WorkDir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- one build: the base image, its conversions and their local boots --------------

    def build_dir(self, build_id: str) -> Path:
        return self.root / "builds" / build_id

    def base_image(self, build_id: str) -> Path:
        return self.build_dir(build_id) / "base.raw"

    def build_record(self, build_id: str) -> Path:
        return self.build_dir(build_id) / "build.json"

    def build_claim(self, build_id: str) -> Path:
        """Written when a run chooses a new build, before it starts: a run killed mid-build
        resumes the same build id (``run.builds``)."""
        return self.build_dir(build_id) / "planned.json"

    def manifest(self, build_id: str) -> Path:
        """What is inside the build: packages and kernel (``image.manifest``)."""
        return self.build_dir(build_id) / "manifest.json"

    def converted(self, build_id: str, disk_format: str) -> Path:
        return self.root / "images" / build_id / f"image.{EXTENSION[disk_format]}"

    def convert_record(self, build_id: str, disk_format: str) -> Path:
        """Written beside the image, before it: an image never stands without its record."""
        path = self.converted(build_id, disk_format)
        return path.with_name(path.name + ".json")

    def local_boot_dir(self, build_id: str) -> Path:
        return self.root / "localboot" / build_id

    def local_boot_record(self, build_id: str, disk_format: str) -> Path:
        return self.local_boot_dir(build_id) / f"{disk_format}.json"

    @property
    def accel_cache(self) -> Path:
        """This host's accelerator decision, shared by every build's local boots."""
        return self.root / ACCEL_CACHE

    # -- one build on one cloud and region (``cloud`` is the target key, ``name/region``) ---

    def upload_record(self, build_id: str, cloud: str) -> Path:
        return self.root / "uploads" / build_id / f"{file_name(cloud)}.json"

    def verify_dir(self, build_id: str) -> Path:
        return self.root / "verify" / build_id

    def verify_record(self, build_id: str, cloud: str) -> Path:
        return self.verify_dir(build_id) / f"{file_name(cloud)}.json"

    def retention_record(self, build_id: str, cloud: str) -> Path:
        return self.root / "retention" / build_id / f"{file_name(cloud)}.json"

    # -- the run ---------------------------------------------------------------------------

    @property
    def failures_dir(self) -> Path:
        return self.root / "failures"

    def failure_record(self, task_id: str) -> Path:
        return self.failures_dir / f"{task_id}.json"

    @property
    def journal(self) -> Path:
        """What verify servers, addresses and keys a run created, for cleanup to sweep."""
        return self.root / "journal"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs / name

    @property
    def cli_log(self) -> Path:
        return self.log("imagefleet.log")

    @property
    def task_ledger(self) -> Path:
        return self.log("tasks.jsonl")

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def report_dir(self, run: str) -> Path:
        return self.reports / run

    @property
    def metrics(self) -> Path:
        """node_exporter textfile directory (``run.metrics``)."""
        return self.root / "metrics"

    @property
    def latest_report(self) -> Path:
        return self.reports / "latest" / "report.json"
