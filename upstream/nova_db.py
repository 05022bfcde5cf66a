"""Nova's databases in one process, run by the upstream venv's Python.

``nova_db.py NOVA_CONF CELL0_URL``: the steps of Nova's install guide,
``nova-manage api_db sync``, ``cell_v2 map_cell0``, ``cell_v2 create_cell
--name cell1`` (the transport URL and database of nova.conf) and ``db sync``
(cell0 and cell1), as the commands of ``nova/cmd/manage.py`` called one
after another in this process after one ``parse_args``: each
``nova-manage`` process would import Nova again (seconds of CPU each on a
two-core machine). Nova's own migrations run on SQLite, as in its functional
tests.
"""

from __future__ import annotations

import sys

from nova import config, objects
from nova.cmd import manage


def main() -> int:
    conf, cell0 = sys.argv[1], sys.argv[2]
    config.parse_args(["nova-manage", "--config-file", conf])
    objects.register_all()
    steps = (("api_db sync", manage.ApiDbCommands().sync, {}),
             ("cell_v2 map_cell0", manage.CellV2Commands().map_cell0,
              {"database_connection": cell0}),
             ("cell_v2 create_cell", manage.CellV2Commands().create_cell, {"name": "cell1"}),
             ("db sync", manage.DbCommands().sync, {}))
    for name, step, kwargs in steps:
        code = step(**kwargs)
        if code:
            print(f"nova-manage {name} exited {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
