"""``python -m raytune_opt`` is the ``raytune-opt`` command (:mod:`raytune_opt.cli`)."""

import sys

from raytune_opt.cli import main

sys.exit(main())
