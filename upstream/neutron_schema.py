"""Neutron's schema on SQLite, run by the upstream venv's Python.

``neutron-db-manage upgrade heads`` cannot run on SQLite: its migrations alter
constraints (alembic raises "No support for ALTER of constraints in SQLite
dialect"). So the schema is created from Neutron's models, the way Neutron's
own unit tests build theirs (``neutron/db/migration/models/head.py``
``get_metadata()``), and the alembic branches are then stamped at their heads
(``neutron-db-manage stamp heads``), so the server's check that the database
is current passes.

``neutron_schema.py CONFIG``: CONFIG is the neutron.conf naming the database.
"""

from __future__ import annotations

import configparser
import sys

import sqlalchemy
from neutron.db.migration import cli
from neutron.db.migration.models import head


def main() -> None:
    conf = sys.argv[1]
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(conf)
    engine = sqlalchemy.create_engine(parser["database"]["connection"])
    head.get_metadata().create_all(engine)
    engine.dispose()
    sys.argv = ["neutron-db-manage", "--config-file", conf, "stamp", "heads"]
    cli.main()


if __name__ == "__main__":
    main()
