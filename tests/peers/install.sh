#!/bin/sh
# Install the real WinRM client the lab's integration tests drive (pywinrm) into .venv at the
# repository root. Idempotent and quiet; needs only python3 (3.11 on Debian 12) with venv.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import winrm' 2>/dev/null; then
    exit 0
fi
if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 without python3-venv has no ensurepip: create the venv without pip
    # and bootstrap pip from PyPA's get-pip.py (python's own urllib; no curl needed).
    python3 -m venv --clear --without-pip "$venv"
    "$venv/bin/python" -c 'import urllib.request; exec(urllib.request.urlopen("https://bootstrap.pypa.io/get-pip.py").read())' --quiet
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check pywinrm
"$venv/bin/python" -c 'import winrm' 
