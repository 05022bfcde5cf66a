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

``serve.py keystone|glance|nova|placement PORT``: nova is its compute API
(``OS_NOVA_CONFIG_DIR``), placement ``OS_PLACEMENT_CONFIG_DIR``; both SQLite
like Glance, so both begin ``IMMEDIATE``. ``serve.py cmd MODULE:FUNC ARGV0
ARGS...``: a console script (Nova's conductor, scheduler and compute,
neutron-server) the same way; ``cmd --gate FILE ...`` imports it at once but
runs it only once FILE exists (nova-compute, whose first call to the conductor
is lost if it comes before the conductor listens, and then waits 10 s).

``serve.py swift KIND CONF``: a Swift server (``proxy``, ``account``,
``container``, ``object``). Swift checks ``/etc/swift/swift.conf`` before it
reads ``swift_dir`` from CONF, so the launcher points it at the swift.conf
beside CONF first: nothing is read from /etc.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

APPS = {
    "keystone": "keystone.wsgi.api:application",
    "glance": "glance.wsgi.api:application",
    "nova": "nova.wsgi.osapi_compute:application",
    "placement": "placement.wsgi.api:application",
}


def gunicorn(target: str, options: dict) -> None:
    """One gunicorn master and one threaded worker for one WSGI app. gunicorn is
    imported here, not at the top: the console scripts of ``cmd`` must import
    their own modules first (eventlet patches before anything else loads)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            module, attr = target.split(":")
            return getattr(importlib.import_module(module), attr)

    Server().run()


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


def run_command(target: str, argv: list[str], gate: str | None = None) -> None:
    """A console script's ``main`` (nova-conductor, neutron-server, ...) with
    ``IMMEDIATE`` SQLite transactions: these services write one SQLite file from
    several processes. The module is imported first, as its script would
    (Nova's and Neutron's command modules monkey-patch with eventlet on import).
    With ``gate``, ``main`` waits, after the import, until that file exists."""
    module, attr = target.split(":")
    func = getattr(importlib.import_module(module), attr)
    immediate_sqlite_transactions()
    while gate and not os.path.exists(gate):
        time.sleep(0.1)
    sys.argv = argv
    sys.exit(func())


def main() -> None:
    if sys.argv[1] == "cmd":
        gate = None
        if sys.argv[2] == "--gate":
            gate = sys.argv[3]
            del sys.argv[2:4]
        run_command(sys.argv[2], sys.argv[3:], gate)
    if sys.argv[1] == "swift":
        sys.exit(serve_swift(sys.argv[2], sys.argv[3]))
    name, port = sys.argv[1], int(sys.argv[2])
    sys.argv = [f"{name}-api"]
    if name in ("glance", "nova", "placement"):
        immediate_sqlite_transactions()
    if name == "nova":
        # The compute API runs under gunicorn's threads, not eventlet's
        # (nova/monkey_patch.py reads this before it patches anything).
        os.environ["OS_NOVA_DISABLE_EVENTLET_PATCHING"] = "true"
    gunicorn(APPS[name], {
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
    })


if __name__ == "__main__":
    main()
