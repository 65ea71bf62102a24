"""``python -m pedgm_kit`` is the ``pedgm`` command line."""

import sys

from .cli import main

sys.exit(main())
