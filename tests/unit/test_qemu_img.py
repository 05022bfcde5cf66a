"""qemu-img argv decisions (pure) and the error mapping of check."""

import pytest

from pipeline.core.errors import ConvertError
from pipeline.image import qemu_img


@pytest.mark.parametrize("dest_fmt, out_of_order", [("raw", True), ("qcow2", False), ("vpc", False)])
def test_convert_argv_is_sparse_and_orders_writes_safely(dest_fmt, out_of_order):
    argv = qemu_img.convert_argv("in.raw", "raw", "out", dest_fmt)
    assert argv[:2] == [qemu_img.QEMU_IMG, "convert"]
    assert argv[argv.index("-O") + 1] == dest_fmt
    assert argv[argv.index("-S") + 1] == "4k"
    assert ("-W" in argv) is out_of_order
    assert argv[-2:] == ["in.raw", "out"]


def test_convert_argv_options_and_unknown_format():
    argv = qemu_img.convert_argv("a", "raw", "b", "vpc", options={"subformat": "dynamic"})
    assert argv[argv.index("-o") + 1] == "subformat=dynamic"
    with pytest.raises(ConvertError, match="unknown qemu image format 'vmdk'"):
        qemu_img.convert_argv("a", "raw", "b", "vmdk")


def test_convert_argv_compresses_qcow2_only():
    assert "-c" in qemu_img.convert_argv("a", "raw", "b", "qcow2", compress=True)
    assert "-c" not in qemu_img.convert_argv("a", "raw", "b", "qcow2")
    for fmt in ("raw", "vpc"):
        with pytest.raises(ConvertError, match=f"only qcow2 takes compressed clusters, not {fmt}"):
            qemu_img.convert_argv("a", "raw", "b", fmt, compress=True)
