"""Prints where meson install puts the ipmpi package, given PREFIX and
meson's default: the site directory of this Python under PREFIX (so that
`import ipmpi` works at once: on Debian, /usr/local/lib/python3.X/dist-packages,
which meson's default for /usr/local is not), or the default when this Python
searches no directory under PREFIX."""
import os
import sys

prefix, default = os.path.abspath(sys.argv[1]), sys.argv[2]
for entry in sys.path[1:]:
    if os.path.basename(entry) in ("site-packages", "dist-packages") \
            and os.path.relpath(entry, prefix).split(os.sep)[0] == "lib":
        print(entry)
        break
else:
    print(default)
