#!/usr/bin/env bash
# Installs what ipmpi needs from Debian's packages (when missing) and builds it
# into build/ (and, with --sanitize, build-sanitize/ with AddressSanitizer and
# UndefinedBehaviorSanitizer). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential pkg-config meson ninja-build libopenmpi-dev openmpi-bin
          libopenblas-dev libnetcdf-dev netcdf-bin libinih-dev zlib1g-dev
          python3 python3-numpy python3-netcdf4 python3-xarray python3-matplotlib
          dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

[ -f build/build.ninja ] || meson setup build --werror
meson compile -C build
if [ "${1:-}" = "--sanitize" ]; then
    [ -f build-sanitize/build.ninja ] ||
        meson setup build-sanitize --werror -Db_sanitize=address,undefined -Db_lundef=false \
            -Dbuildtype=debugoptimized -Dtest_hooks=true
    meson compile -C build-sanitize
fi
