"""``python -m smem_dask`` runs the ``smem-dask`` command."""

import sys

from .cli import main

sys.exit(main())
