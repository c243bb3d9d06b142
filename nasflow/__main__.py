"""`python -m nasflow` runs the `nasflow` command."""

import sys

from nasflow.cli import main

sys.exit(main())
