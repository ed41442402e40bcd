#!/bin/sh
# Install the real WinRM client the lab's integration tests drive (pywinrm) into .venv at the
# repository root. Idempotent and quiet; needs only python3 (3.11 on Debian 12) with venv.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import winrm' 2>/dev/null; then
    exit 0
fi
if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 without python3-venv: bootstrap pip inside a venv created without it.
    python3 -m venv --without-pip "$venv"
    curl -fsSL https://bootstrap.pypa.io/get-pip.py | "$venv/bin/python" - --quiet
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check pywinrm
"$venv/bin/python" -c 'import winrm' 
