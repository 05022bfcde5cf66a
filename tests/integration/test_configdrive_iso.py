"""Real genisoimage: the drive is labelled config-2 and every file reads back."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.core import runner
from pipeline.image.configdrive import NetworkSpec, config_drive_files, write_config_drive

pytestmark = pytest.mark.skipif(not (shutil.which("genisoimage") and shutil.which("isoinfo")),
                                reason="genisoimage/isoinfo not installed")

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample imagefleet"


def _isoinfo(*args) -> str:
    return runner.run(["isoinfo", *args], capture=True).stdout


@pytest.fixture
def iso(tmp_path):
    files = config_drive_files(
        uuid="0b5e5a0c-1b0c-4c1e-9a35-6f1b0f1a2b3c", name="probe",
        public_keys={"imagefleet": KEY},
        networks=[NetworkSpec(mac="52:54:00:12:34:56", dhcp=False, address="10.0.2.15/24",
                              gateway="10.0.2.2", dns=("10.0.2.3",))],
        user_data="#cloud-config\n{}\n", injected_files={"/etc/motd": b"hi\n"})
    path = write_config_drive(tmp_path / "drives" / "config.iso", files,
                              log_path=tmp_path / "genisoimage.log")
    return path, files


def test_volume_label_is_config_2(iso):
    path, _ = iso
    assert "Volume id: config-2" in _isoinfo("-d", "-i", str(path)).splitlines()
    assert not list(path.parent.glob("*.part")) and not list(path.parent.glob("configdrive-*"))


def test_every_file_reads_back_with_rock_ridge_names(iso):
    path, files = iso
    listing = _isoinfo("-R", "-f", "-i", str(path)).split()
    for rel, content in files.items():
        assert f"/{rel}" in listing
        assert _isoinfo("-R", "-x", f"/{rel}", "-i", str(path)).encode() == content


def test_json_files_are_valid(iso):
    path, _ = iso
    meta = json.loads(_isoinfo("-R", "-x", "/openstack/latest/meta_data.json", "-i", str(path)))
    net = json.loads(_isoinfo("-R", "-x", "/openstack/2015-10-15/network_data.json",
                              "-i", str(path)))
    assert meta["public_keys"] == {"imagefleet": KEY}
    assert net["networks"][0]["ip_address"] == "10.0.2.15"


def test_joliet_tree_present(iso):
    path, _ = iso
    assert "Joliet" in _isoinfo("-d", "-i", str(path))
