"""The cloud's check, run on a local qemu boot of the converted file, before any upload.

The accelerator comes from ``qemuhost.accel``.  A KVM boot that fails before
its kernel runs (qemu refuses KVM, or the console shows nothing past the boot
loader within ``stall_timeout``) is stopped and tried once more under TCG; the
record says so, with why and the seconds lost, and a cached "kvm" is dropped.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from pipeline.cloud import bootfigures
from pipeline.cloud.keys import temporary_keypair
from pipeline.cloud.verify import LOGIN_USER, check_build_id, check_guest
from pipeline.core.errors import AccelStalled, BootError, ReachabilityError
from pipeline.image import configdrive, vm
from pipeline.image.convert import check_converted
from qemuhost import accel, console

LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 900


class _KvmFailed(Exception):
    """Internal: this KVM boot failed before its kernel ran; TCG may still boot it."""

    def __init__(self, why: str, seconds: float):
        super().__init__(why)
        self.why, self.seconds = why, seconds


def local_boot(image_path: str | os.PathLike, disk_format: str, build_id: str, *,
               work_dir: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT,
               login: bool = True, username: str = LOGIN_USER, accel_setting: str = "auto",
               accel_cache: str | os.PathLike | None = None,
               stall_timeout: float = console.STALL_SECONDS,
               static_network: bool = False) -> dict[str, Any]:
    """Boot the converted file in qemu here and run the cloud check on it; a JSON-ready dict.

    ``accel_cache`` (default ``<work_dir>/accel.json``) keeps the probe's answer;
    ``static_network`` describes the address in the config drive instead of DHCP.
    """
    work_dir = Path(work_dir)
    where = f"local {disk_format}"
    # what qemu would boot is what the conversion wrote, undamaged
    check_converted(Path(image_path), disk_format, where=where, step="check before local boot")
    work_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(accel_cache) if accel_cache else work_dir / vm.ACCEL_CACHE
    decision = accel.decide(accel_setting, cache)
    name = f"localboot-{build_id}-{disk_format}"
    fallback = None
    with temporary_keypair(work_dir, name=name) as key:
        files = configdrive.config_drive_files(
            uuid=str(uuid.uuid4()), name=name, public_keys={key.name: key.public_key},
            networks=[vm.user_network(static=static_network)], random_seed=os.urandom(512))
        drive = configdrive.write_config_drive(work_dir / f"{name}.iso", files)
        boot = dict(image_path=image_path, disk_format=disk_format, work_dir=work_dir,
                    drive=drive, name=name, key=key, timeout=timeout, login=login,
                    username=username, where=where, stall_timeout=stall_timeout)
        try:
            try:
                result, figures = _boot_once(decision.args, **boot)
            except _KvmFailed as e:
                LOG.warning("%s: %s after %.0f s; booting again under TCG", where, e.why,
                            e.seconds)
                fallback = {"from": "kvm", "to": "tcg", "why": e.why,
                            "seconds_lost": round(e.seconds, 1)}
                decision = (accel.kvm_failed(cache, e.why) if decision.source != "setting"
                            else accel.Decision("tcg", f"KVM asked for, but {e.why}", "boot"))
                result, figures = _boot_once(accel.accel_args("tcg"), **boot)
        finally:
            drive.unlink(missing_ok=True)
    if login:
        check_build_id(result, build_id, where)
    return {"image": str(image_path), "disk_format": disk_format, "verified": True,
            "build_id": result.output.strip() if login else None, "banner": result.banner,
            "host_key": result.host_key or None, "accel": decision.accel,
            "accel_why": decision.why, "accel_fallback": fallback,
            "seconds_to_banner": result.seconds_to_banner,
            "seconds_to_login": result.seconds_to_login if login else None,
            "boot_figures": figures}


def _boot_once(accel_args: list[str], *, image_path, disk_format, work_dir, drive, name, key,
               timeout, login, username, where, stall_timeout):
    """One qemu boot, the check and (after a login) systemd's boot figures; a KVM
    failure before the kernel raises ``_KvmFailed``."""
    started = time.monotonic()
    with vm.boot(image_path, disk_format, work_dir=work_dir, config_drive=drive, name=name,
                 accel_args=accel_args, stall_timeout=stall_timeout) as machine:
        try:
            result = check_guest(machine.host, machine.ssh_port, timeout=timeout,
                                 key_path=key.private_key_path, username=username,
                                 login=login, where=where, vm_=machine)
            figures = (bootfigures.analyse(machine.host, machine.ssh_port,
                                           key_path=key.private_key_path, username=username,
                                           where=where) if login else None)
            return result, figures
        except AccelStalled as e:
            raise _KvmFailed(e.cause, time.monotonic() - started) from None
        except BootError as e:
            if machine.accel_name == "kvm" and not machine.past_boot_loader():
                raise _KvmFailed(e.cause, time.monotonic() - started) from None
            raise
        except ReachabilityError as e:
            tail = machine.console_tail(3)
            e.cause += "; console: " + (" | ".join(tail) if tail else "(empty)")
            e.cause += f"; log: {machine.console_log}"
            raise
