"""Making images: diskimage-builder, qemu-img, the VHD writer, conversion, image sources, config drives and the local qemu boot."""
