"""A real base image, built once per test session.

Set IMAGEFLEET_E2E_WORK to a directory to keep DIB's cache (and the image)
between runs; an image whose build digest is unchanged is reused as is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline import dib


class BuiltImage(NamedTuple):
    path: Path
    build_id: str
    work_dir: Path
    log_path: Path


@pytest.fixture(scope="session")
def base_image(tmp_path_factory) -> BuiltImage:
    configured = os.environ.get("IMAGEFLEET_E2E_WORK")
    work = Path(configured) if configured else tmp_path_factory.mktemp("dib-work")
    spec = dib.resolve_spec(dib.DibSpec())
    digest = dib.build_digest(spec, [dib.ELEMENTS_DIR])
    out_dir = work / "builds" / digest[:16]
    log_path = out_dir / "build.log"
    image = out_dir / f"{spec.name}.{spec.image_type}"
    if not image.is_file():
        image = dib.build_image(spec, out_dir, work_dir=work, log_path=log_path)
    return BuiltImage(image, dib.build_id_for(spec, digest), work, log_path)
