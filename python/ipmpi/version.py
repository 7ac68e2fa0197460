"""The package's version: meson.build's project version, spelled there only.

An installed package carries it in _version.py (written by meson install or
by the wheel build); the source tree reads it from ../meson.build.
"""
import os
import re


def source_version(meson_build):
    """The version in meson.build's project() call, or None."""
    try:
        with open(meson_build, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    found = re.search(r"project\s*\([^)]*?version\s*:\s*'([^']+)'", text, re.S)
    return found.group(1) if found else None


try:
    from ._version import __version__
except ImportError:
    here = os.path.dirname(os.path.abspath(__file__))
    __version__ = source_version(os.path.join(here, "..", "..", "meson.build")) or "unknown"
