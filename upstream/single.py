"""A second upstream Glance on demand: single-store, converting imports to raw.

The main Glance of the upstream target runs multi-store (``enabled_backends``).
Two upstream behaviours need another configuration: a failed interoperable
import on a single-store Glance (nothing in ``os_glance_failed_import``; the
reason only in the image's task list) and Glance's ``image_conversion`` import
plugin. One extra Glance API serves both (``templates/glance-api-single.conf``):
the legacy ``[glance_store] stores/default_store`` config, the plugin with
``output_format = raw``, its own SQLite database and port, the same Keystone
and service user, and its image endpoints in catalog region ``REGION``.

``start`` needs the main services (it starts them if they are not running),
reuses a healthy extra Glance, and records its pid in the main state file, so
``python -m upstream.run stop`` ends it too; ``stop`` ends only it and removes
its endpoints. ``python -m upstream.single start|stop`` does the same by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from upstream import run
from upstream.bootstrap import KeystoneAdmin, use_wal
from upstream.install import CLOUD_NAME, render
from upstream.procs import answers, free_ports, group_members, kill_group, service_env

NAME = "glance-single"
REGION = "RegionSingle"
CLOUD = f"{CLOUD_NAME}-single"


def _healthy(info: dict[str, Any] | None, state: dict[str, Any], lay: run.Layout) -> bool:
    pid = state["pids"].get(NAME)
    return bool(info and pid and run._ours(pid, lay)
                and answers(f"http://127.0.0.1:{info['port']}/") == 300)


def _clouds_yaml(state: dict[str, Any]) -> str:
    """The main clouds.yaml's entries, renamed and pointed at ``REGION``."""
    clouds = json.loads(Path(state["clouds_yaml"]).read_text())["clouds"]
    out = {name.replace(CLOUD_NAME, CLOUD, 1): {**entry, "region_name": REGION}
           for name, entry in clouds.items()}
    return json.dumps({"clouds": out}, indent=2) + "\n"


def _db_sync(lay: run.Layout, conf_dir: Path) -> None:
    with open(lay.logs / f"{NAME}-manage.log", "wb") as log:
        proc = subprocess.run(
            [lay.bin("glance-manage"), "--config-file", str(conf_dir / "glance-api.conf"),
             "db_sync"], env=service_env({"OS_GLANCE_CONFIG_DIR": str(conf_dir)}),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=run.START_TIMEOUT,
            check=False)
    if proc.returncode != 0:
        raise run.UpstreamError(f"{NAME} glance-manage db_sync exited {proc.returncode} "
                                f"(see {lay.logs / f'{NAME}-manage.log'})")
    use_wal(conf_dir / "glance.db")


def start(root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The extra Glance running; returns its info (port, region, clouds_yaml, start_s,
    reused) with the main state under ``main``."""
    main_state = run.start(root)
    lay = run.Layout.from_env(root)
    with run.locked(lay):
        state = run.read_state(lay) or main_state
        info = state.get("single")
        if _healthy(info, state, lay):
            return {**info, "reused": True, "main": state}
        _stop(lay, state)
        started = time.monotonic()
        port = free_ports(1)[0]
        conf_dir = lay.data / NAME
        shutil.rmtree(conf_dir, ignore_errors=True)      # from empty state, as run.py does
        render("glance-api-single.conf", conf_dir / "glance-api.conf", {
            "data": lay.data, "venv": lay.venv, "port": port,
            "keystone_url": state["auth_url"].removesuffix("/v3"),
            "glance_password": state["service_passwords"]["glance"]})
        for sub in ("images", "staging", "work", "cache", "locks"):
            (conf_dir / sub).mkdir(parents=True, exist_ok=True)
        _db_sync(lay, conf_dir)
        url = f"http://127.0.0.1:{port}"
        state["pids"][NAME] = run.spawn(lay, NAME, [lay.python, run.HERE / "serve.py",
                                                    "glance", port],
                                        {"OS_GLANCE_CONFIG_DIR": str(conf_dir)})
        info = {"port": port, "region": REGION, "cloud": CLOUD,
                "clouds_yaml": str(lay.data / "clouds-single.yaml"), "endpoints": []}
        state["single"] = info
        lay.state_file.write_text(json.dumps(state, indent=2) + "\n")
        try:
            ks = KeystoneAdmin(state["auth_url"], state["admin"]["password"])
            info["endpoints"] = ks.endpoints_in("image", REGION, url)
            lay.state_file.write_text(json.dumps(state, indent=2) + "\n")
            run.wait_for(lay, state, f"{url}/", 300, NAME)
        except BaseException:
            _stop(lay, state)
            raise
        Path(info["clouds_yaml"]).write_text(_clouds_yaml(state))
        info["start_s"] = round(time.monotonic() - started, 1)
        lay.state_file.write_text(json.dumps(state, indent=2) + "\n")
        return {**info, "reused": False, "main": state}


def _stop(lay: run.Layout, state: dict[str, Any]) -> bool:
    """End the extra Glance and drop its endpoints; the state file is rewritten."""
    pid = state.get("pids", {}).pop(NAME, None)
    info = state.pop("single", None)
    stopped = bool(pid and any(run._ours(p, lay) for p in group_members(pid)))
    if stopped:
        kill_group(pid)
    if info and info.get("endpoints"):
        KeystoneAdmin(state["auth_url"], state["admin"]["password"]).delete_endpoints(
            info["endpoints"])
    if lay.state_file.exists():
        lay.state_file.write_text(json.dumps(state, indent=2) + "\n")
    return stopped


def stop(root: str | os.PathLike | None = None) -> bool:
    lay = run.Layout.from_env(root)
    with run.locked(lay):
        state = run.read_state(lay)
        return _stop(lay, state) if state else False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upstream.single",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--dir", help=f"work dir (default ${run.DIR_ENV} or work/upstream)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            info = start(args.dir)
            how = "reused" if info["reused"] else f"started in {info['start_s']} s"
            print(f"upstream {NAME}: {how}; OS_CLIENT_CONFIG_FILE={info['clouds_yaml']} "
                  f"OS_CLOUD={info['cloud']}")
        else:
            print(f"upstream {NAME}: {'stopped' if stop(args.dir) else 'was not running'}")
    except run.UpstreamError as e:
        print(f"imagefleet: upstream: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
