"""The gzip of a raw image: what Glance's decompression plugin recognises and inflates
to the raw file, and the check before upload that it is still the file written."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pytest

from pipeline.core.errors import ImageCorruptError
from pipeline.image.convert import compressed_payload, gzip_path
from pipeline.image.gzipped import MAGIC, inflated_sha256, write_gzip

MiB = 1024 * 1024


@pytest.fixture
def raw(tmp_path):
    path = tmp_path / "image.raw"
    with open(path, "wb") as f:
        f.write(os.urandom(MiB // 2))
        f.truncate(8 * MiB)                       # a sparse tail, as a disk image has
    return path


def test_gzip_inflates_to_the_raw_file(raw):
    record = write_gzip(raw, gzip_path(raw))
    gz = gzip_path(raw)
    data = raw.read_bytes()
    assert gz.read_bytes()[:3] == MAGIC                    # Glance's plugin looks for this
    assert gzip.decompress(gz.read_bytes()) == data        # as Glance's gzip.open reads it
    assert record["inflates_to"] == hashlib.sha256(data).hexdigest()
    assert record["bytes"] == gz.stat().st_size < MiB
    assert record["sha256"] == hashlib.sha256(gz.read_bytes()).hexdigest()
    assert not gz.with_name(gz.name + ".part").exists()
    again = write_gzip(raw, raw.with_name("again.gz"))
    assert again["sha256"] == record["sha256"]             # no name, no mtime: reproducible


def test_not_a_gzip_is_corrupt(raw):
    with pytest.raises(ImageCorruptError, match="not a whole gzip"):
        inflated_sha256(raw)


def test_compressed_payload_checks_what_the_record_says(raw):
    assert compressed_payload(raw) is None                 # no record: no gzip
    record = write_gzip(raw, gzip_path(raw))
    raw.with_name(raw.name + ".json").write_text(json.dumps({"bytes": 8 * MiB}))
    assert compressed_payload(raw) is None                 # a record without a gzip
    raw.with_name(raw.name + ".json").write_text(json.dumps({"gzip": record}))
    assert compressed_payload(raw) == gzip_path(raw)
    with open(gzip_path(raw), "r+b") as f:
        f.truncate(record["bytes"] - 1)
    with pytest.raises(ImageCorruptError, match="the conversion wrote") as info:
        compressed_payload(raw, where="raw-cloud", step="check before upload")
    assert (info.value.where, info.value.step) == ("raw-cloud", "check before upload")
    gzip_path(raw).unlink()
    with pytest.raises(ImageCorruptError, match="missing"):
        compressed_payload(raw)
