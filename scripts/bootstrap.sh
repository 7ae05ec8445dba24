#!/usr/bin/env bash
# Create .venv and install dicomsvc (with the dev extra when asked). Idempotent and quick when done.
#   scripts/bootstrap.sh          runtime only
#   scripts/bootstrap.sh dev      runtime + test tools + the Debian packages the tests drive
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
# The dev install holds the runtime one: scripts/run.sh after scripts/test.sh installs nothing.
if [ ! -f "$stamp-${1:-run}" ] && [ ! -f "$stamp-dev" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    if [ "${1:-}" = "dev" ]; then
        .venv/bin/python -m pip install --quiet -e '.[dev,embedded]'
    else
        .venv/bin/python -m pip install --quiet -e '.[embedded]'
    fi
    touch "$stamp-${1:-run}"
fi
if [ "${1:-}" = "dev" ]; then
    # Real peers for the tests: Orthanc with DICOMweb, dcmtk, Chromium, PgBouncer.
    need=()
    command -v Orthanc >/dev/null 2>&1 || need+=(orthanc)
    [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
    command -v findscu >/dev/null 2>&1 || need+=(dcmtk)
    [ -x /usr/bin/chromium ] || need+=(chromium)
    [ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)  # the scale-out test runs the nodes through it too
    if [ ${#need[@]} -gt 0 ]; then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi
if [ "${1:-}" = "dev" ]; then
    # OHIF (tests/ohif, bench/dicomweb.py): the pinned build, from the npm registry; quick once done.
    scripts/ohif.sh || echo "bootstrap: OHIF is not installed (scripts/ohif.sh failed); tests/ohif will skip" >&2
fi
