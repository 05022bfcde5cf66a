"""What qemu can do on this host, shared by the pipeline and the local cloud.

Both boot images under qemu and must agree on the accelerator and on how a
cloud's disk_format reads as a qemu block driver.  Neither may import the
other (``pipeline/`` is the product, ``localcloud/`` its test bed), so the
shared piece lives here and imports only the standard library.
"""
