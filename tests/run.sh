#!/usr/bin/env bash
# The whole test suite, as a newcomer or CI runs it: installs the real protocol peers the
# integration tests talk to (pywinrm in .venv, OpenSSH's sshd), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x tests/peers/install.sh ] || [ -f tests/peers/install.sh ]; then
    bash tests/peers/install.sh
fi

# Loopback only: never let an environment proxy see test traffic.
export NO_PROXY="127.0.0.0/8,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"

# Kerberos is in every build (the system's GSS-API is loaded at run time): no feature to add.
cargo test --locked "$@"

# The whole suite (no arguments narrowing it) also runs the vendored winrm-rs's own tests.
if [ "$#" -eq 0 ]; then
    bash vendor/test.sh
fi
