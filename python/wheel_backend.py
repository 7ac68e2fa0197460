"""A PEP 517 build backend for the ipmpi package that needs no package index.

pip builds a project in an isolated environment into which it installs the
backend's requirements from an index; a setuptools backend therefore fails
where no index is reachable. This one uses the standard library only: it
zips ipmpi/ into a pure-Python wheel with the metadata and console scripts
of pyproject.toml's [project] table, and the version of ../meson.build.
"""
import base64
import hashlib
import importlib.util
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "ipmpi"


def project():
    import tomllib       # Python 3.11+
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def version():
    """meson.build's project version; in an sdist, the _version.py it carries."""
    spec = importlib.util.spec_from_file_location("ipmpi_version",
                                                  os.path.join(HERE, PACKAGE, "version.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = module.source_version(os.path.join(HERE, "..", "meson.build"))
    if found:
        return found
    with open(os.path.join(HERE, PACKAGE, "_version.py"), encoding="utf-8") as f:
        return re.search(r'"([^"]+)"', f.read()).group(1)


def sources():
    """(path in the archive, bytes) of every module, _version.py written afresh."""
    files = []
    for root, dirs, names in os.walk(os.path.join(HERE, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py") and name != "_version.py":
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    files.append((os.path.relpath(path, HERE).replace(os.sep, "/"), f.read()))
    files.append((f"{PACKAGE}/_version.py", f'__version__ = "{version()}"\n'.encode()))
    return files


def metadata():
    p = project()
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {version()}",
             f"Summary: {p['description']}", f"License: {p['license']['text']}",
             f"Requires-Python: {p['requires-python']}"]
    lines += [f"Requires-Dist: {d}" for d in p.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def dist_info_files():
    scripts = project().get("scripts", {})
    entry_points = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    wheel = "Wheel-Version: 1.0\nGenerator: ipmpi wheel_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    return {"METADATA": metadata(), "WHEEL": wheel, "entry_points.txt": entry_points,
            "top_level.txt": PACKAGE + "\n"}


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}\n"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{PACKAGE}-{version()}-py3-none-any.whl"
    dist_info = f"{PACKAGE}-{version()}.dist-info"
    entries = sources() + [(f"{dist_info}/{k}", v.encode())
                           for k, v in dist_info_files().items()]
    record = "".join(record_line(path, data) for path, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as whl:
        for path, data in entries + [(f"{dist_info}/RECORD", record.encode())]:
            whl.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = f"{PACKAGE}-{version()}"
    entries = sources() + [("PKG-INFO", metadata().encode())]
    for name in ("pyproject.toml", "wheel_backend.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            entries.append((name, f.read()))
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for path, data in entries:
            info = tarfile.TarInfo(f"{base}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []
