"""`python -m hf_visiontx ...` runs the command line (also under `torchrun -m` and `accelerate launch -m`)."""

import sys

from .apps.cli import main

sys.exit(main())
