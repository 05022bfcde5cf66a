"""Start one upstream service, run by the upstream venv's Python.

``serve.py keystone|glance PORT``: the WSGI app under gunicorn. Both apps parse
``sys.argv`` with oslo.config when they load, so the server's own arguments
must not reach them: this launcher empties ``sys.argv`` and drives gunicorn
through its embedding API instead of its CLI. Config comes from the
environment (``OS_KEYSTONE_CONFIG_DIR``, ``OS_GLANCE_CONFIG_DIR``).

Both keep their databases in SQLite (WAL mode, set at bootstrap), where
oslo.db begins transactions with a deferred ``BEGIN``: a thread that read and
then writes while another thread committed (an import finishing as a request
deletes the image) fails at once with "database is locked". Glance's
transactions therefore begin ``IMMEDIATE`` and queue on SQLite's busy timeout,
as they would wait for a row lock in MySQL (Keystone nests sessions in one
thread, so it keeps the deferred ``BEGIN``; WAL alone serves it). A
deployment detail of SQLite, not an API change.

``serve.py swift KIND CONF``: a Swift server (``proxy``, ``account``,
``container``, ``object``). Swift checks ``/etc/swift/swift.conf`` before it
reads ``swift_dir`` from CONF, so the launcher points it at the swift.conf
beside CONF first: nothing is read from /etc.
"""

from __future__ import annotations

import importlib
import os
import sys

from gunicorn.app.base import BaseApplication

APPS = {
    "keystone": "keystone.wsgi.api:application",
    "glance": "glance.wsgi.api:application",
}


class Server(BaseApplication):
    """One gunicorn master and one threaded worker for one WSGI app."""

    def __init__(self, target: str, options: dict) -> None:
        self.target = target
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)


def immediate_sqlite_transactions() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute", retval=True)
    def _immediate(conn, cursor, statement, parameters, context, executemany):
        if statement == "BEGIN" and conn.dialect.name == "sqlite":
            statement = "BEGIN IMMEDIATE"
        return statement, parameters


def serve_swift(kind: str, conf: str) -> int:
    from swift.common import constraints, storage_policy, utils

    utils.SWIFT_CONF_FILE = os.path.join(os.path.dirname(conf), "swift.conf")
    constraints.reload_constraints()
    storage_policy.reload_storage_policies()
    from swift.common.wsgi import run_wsgi

    sys.argv = [f"swift-{kind}-server"]
    return run_wsgi(conf, f"{kind}-server", verbose=True)


def main() -> None:
    if sys.argv[1] == "swift":
        sys.exit(serve_swift(sys.argv[2], sys.argv[3]))
    name, port = sys.argv[1], int(sys.argv[2])
    sys.argv = [f"{name}-api"]
    if name == "glance":
        immediate_sqlite_transactions()
    Server(APPS[name], {
        "bind": f"127.0.0.1:{port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": 4,
        # Image uploads are long requests; a gthread worker keeps its
        # heartbeat during them, so this only catches a hung worker.
        "timeout": 600,
        "graceful_timeout": 5,
        "proc_name": f"imagefleet-upstream-{name}",
        "accesslog": "-",
    }).run()


if __name__ == "__main__":
    main()
