"""The qcow2 every qcow2 cloud shares: compressed by default, plain when one cloud
says ``qcow2_compressed: false``, and converted (and so locally booted) again when
that choice changes; the raw file's gzip, written only for a raw cloud whose Glance
inflates it (``raw_compressed_imports``).

Fake ``disk-image-create`` (tests/integration/test_build_once.py); qemu-img,
Luigi and the CLI are real.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from pipeline.image import qemu_img
from tests.conftest import cloud_entry, write_clouds_yaml
from tests.integration.test_build_once import build, fake_dib, ran  # noqa: F401 - fixtures

PLAIN = {"image": {"qcow2_compressed": False}}   # imagefleet: {overrides: ...}


def _record(path: str) -> dict:
    return json.loads(Path(path + ".json").read_text())


def test_qcow2_compressed_unless_a_cloud_refuses(config_tree, tmp_path, fake_dib, ran,  # noqa: F811
                                                 capsys):
    work = tmp_path / "work"
    one = write_clouds_yaml(tmp_path / "one.yaml", {"hp": cloud_entry("hp-like")})
    assert build(config_tree, one, work) == 0
    (qcow2,) = capsys.readouterr().out.split()
    assert _record(qcow2)["compressed"] is True
    compressed_size = Path(qcow2).stat().st_size
    base = next(work.glob("builds/*/base.raw"))
    assert qemu_img.compare(base, "raw", qcow2, "qcow2")

    booted = next(work.glob("builds/*")).name
    boot_record = work / "localboot" / booted / "qcow2.json"   # as LocalBoot leaves it
    boot_record.parent.mkdir(parents=True)
    boot_record.write_text("{}")

    ran.clear()
    both = write_clouds_yaml(tmp_path / "both.yaml", {
        "hp": cloud_entry("hp-like"), "auro": overridden("auro-like", PLAIN)})
    assert build(config_tree, both, work) == 0
    (again,) = capsys.readouterr().out.split()
    assert again == qcow2 and ran["ConvertImage"] == 1 and ran["BuildBaseImage"] == 0
    assert _record(qcow2)["compressed"] is False
    assert Path(qcow2).stat().st_size > compressed_size
    assert not boot_record.exists(), "the new file must be booted again"
    assert qemu_img.compare(base, "raw", qcow2, "qcow2")


def overridden(profile: str, overrides: dict) -> dict:
    entry = cloud_entry(profile)
    entry["imagefleet"]["overrides"] = overrides
    return entry


def test_raw_gets_a_gzip_only_for_a_cloud_whose_glance_inflates_it(
        config_tree, tmp_path, fake_dib, ran, capsys):  # noqa: F811
    work = tmp_path / "work"
    inflating = write_clouds_yaml(tmp_path / "gz.yaml", {"dh": overridden(
        "dreamhost-like", {"image": {"raw_compressed_imports": ["web-download"]}})})
    assert build(config_tree, inflating, work) == 0
    (raw,) = capsys.readouterr().out.split()
    gz = Path(raw + ".gz")
    written = _record(raw)["gzip"]
    assert written["bytes"] == gz.stat().st_size
    assert written["inflates_to"] == hashlib.sha256(Path(raw).read_bytes()).hexdigest()
    assert gzip.decompress(gz.read_bytes()) == Path(raw).read_bytes()

    ran.clear()
    plain = write_clouds_yaml(tmp_path / "plain.yaml", {"dh": cloud_entry("dreamhost-like")})
    assert build(config_tree, plain, work) == 0
    assert capsys.readouterr().out.split() == [raw] and ran["ConvertImage"] == 1
    assert "gzip" not in _record(raw) and not gz.exists()
