"""The local cloud: OpenStack identity, image and object services on 127.0.0.1.

Each personality (a vendor shape, see ``personalities/``) is served as its own
cloud on its own loopback port, from one process and one store. Start it with
``python -m localcloud --personality NAME ...``; see ``server.main``.
"""
