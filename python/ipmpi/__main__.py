"""python3 -m ipmpi plot|export RUN.nc ...: the package's commands without
installing their scripts (`ipmpi` itself is the C program)."""
import sys

from .cli import main

sys.exit(main())
