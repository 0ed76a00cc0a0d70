"""``python -m radon`` is ``radon``."""

import sys

from radon.cli import main

sys.exit(main())
