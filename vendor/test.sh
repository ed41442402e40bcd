#!/usr/bin/env bash
# The vendored winrm-rs's own unit tests (about 900: wiremock fakes, loopback servers, the
# crate's NTLM and Kerberos code), which guard salve's changes to it (vendor/README.md).
# Cargo tests a package's dev-dependencies only for members of the workspace, and making the
# vendored crate a member would put it under salve's fmt and clippy rules; so it is tested as
# a workspace of its own in a scratch copy. The copy starts from salve's Cargo.lock (cargo adds
# only the dev-dependencies) and builds into salve's target directory, which already holds the
# other dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r vendor/winrm-rs "$scratch/"
cp Cargo.lock "$scratch/winrm-rs/"
cd "$scratch/winrm-rs"
# Its one path dependency (salve-gssapi) is found from the copy's new place.
grep -q 'path = "../../crates/salve-gssapi"' Cargo.toml
sed -i "s#path = \"../../crates/#path = \"$root/crates/#" Cargo.toml
printf '\n[workspace]\n' >>Cargo.toml
CARGO_TARGET_DIR=$target cargo test --lib --features kerberos
