"""``python -m localcloud``: the same as ``imagefleet localcloud``."""

import sys

from localcloud.server import main

sys.exit(main())
