"""The operator's commands: ``imagefleet images``, ``promote`` and ``delete``.

Thin over ``pipeline.cloud.fleet``; each cloud is reached with the credentials
``load_all`` checked, and a failure is the usual one line.
"""

from __future__ import annotations

import argparse
import json
import os

from pipeline.cloud import fleet
from pipeline.core.errors import ConfigError


def add_parsers(sub, add_common) -> None:
    images = sub.add_parser("images", help="our images per cloud: build, created, size, "
                            "verified, which holds the stable name")
    add_common(images)
    images.add_argument("--json", action="store_true")
    images.add_argument("--work-dir", default=os.environ.get("IMAGEFLEET_WORK_DIR", "work"),
                        help="where the log file goes")
    for name, text in (("promote", "give a verified build the stable name in a cloud"),
                       ("delete", "delete a build's image from a cloud (never the one "
                        "holding the stable name)")):
        p = sub.add_parser(name, help=text)
        add_common(p)
        p.add_argument("--build", required=True, help="the build id (imagefleet images)")
        p.add_argument("--work-dir", default=os.environ.get("IMAGEFLEET_WORK_DIR", "work"),
                       help="where the log file goes")


def cmd_images(args: argparse.Namespace, load_all) -> int:
    config, selected = load_all(args)
    listing = {cloud.name: fleet.list_images(cloud, config.image_name) for cloud in selected}
    if args.json:
        print(json.dumps(listing, indent=2, sort_keys=True))
        return 0
    for cloud, rows in listing.items():
        print(f"{cloud}:")
        print(f"  {'build':<17} {'created':<21} {'size':>11} {'verified':<8} name")
        for r in rows:
            stable = f"  (stable: {r['stable']})" if r["stable"] else ""
            print(f"  {r['build'] or '-':<17} {r['created'] or '-':<21} {r['size'] or 0:>11} "
                  f"{'yes' if r['verified'] else 'no':<8} {r['name']}{stable}")
    return 0


def _one_cloud(args: argparse.Namespace, load_all):
    if not args.cloud or len(args.cloud) != 1:
        raise ConfigError("name exactly one cloud with --cloud", key="--cloud")
    config, (cloud,) = load_all(args)
    return config, cloud


def cmd_promote(args: argparse.Namespace, load_all) -> int:
    config, cloud = _one_cloud(args, load_all)
    if not config.stable_name:
        raise ConfigError("no image.stable_name to promote to", file=config.path,
                          key="image.stable_name")
    changes = fleet.promote(cloud, stable_name=config.stable_name,
                            image_name=config.image_name, build=args.build)
    for change in changes:
        print(f"{cloud.name}: {change.image.id} "
              + (f"now holds {change.stable!r}" if change.stable else "released the name")
              + (f" (named {change.image.name})" if change.name else ""))
    if not changes:
        print(f"{cloud.name}: build {args.build} already holds {config.stable_name!r}")
    return 0


def cmd_delete(args: argparse.Namespace, load_all) -> int:
    config, cloud = _one_cloud(args, load_all)
    deleted = fleet.delete_build(cloud, image_name=config.image_name, build=args.build)
    print(f"{cloud.name}: deleted {', '.join(deleted) or 'nothing (already gone)'}")
    return 0


HANDLERS = {"images": cmd_images, "promote": cmd_promote, "delete": cmd_delete}


def run(args: argparse.Namespace, load_all) -> int:
    return HANDLERS[args.command](args, load_all)
