"""The task ledger: what really ran, counted since a moment, robust to a cut-off line."""

from __future__ import annotations

import time

from pipeline.run import ledger
from pipeline.run.workdir import WorkDir


def test_counts_since_a_moment_and_skips_a_torn_line(tmp_path):
    ledger.record(tmp_path, "BuildBaseImage_x", "BuildBaseImage")
    middle = time.time()
    time.sleep(0.01)
    for fmt in ("qcow2", "raw"):
        ledger.record(tmp_path, f"ConvertImage_{fmt}", "ConvertImage")
    with open(WorkDir(tmp_path).task_ledger, "a") as f:
        f.write('{"task_id": "UploadImage_y", "ta')        # a kill mid-write
    assert ledger.counts(tmp_path) == {"BuildBaseImage": 1, "ConvertImage": 2}
    assert ledger.counts(tmp_path, since=middle) == {"ConvertImage": 2}
    assert ledger.counts(tmp_path / "nothing-yet") == {}
