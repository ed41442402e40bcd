#!/bin/sh
# Install the real protocol peers the integration tests drive: pywinrm (a WinRM client, with
# pykerberos for its Kerberos transport) and Ansible (ansible-core with its collections, for
# `ansible-playbook --syntax-check` of the Ansible-style corpus in tests/ansible) into .venv at
# the repository root, Debian's OpenSSH server (sshd, started by the SSH tests on loopback),
# Debian's PostgreSQL server (throwaway clusters for the queue tests), Debian's Chromium (the
# run-report test opens the HTML pages in it, headless) and MIT Kerberos (a throwaway realm for
# the Kerberos tests, tests/peers/krb5kdc.sh), with the krb5 headers pykerberos builds against
# (salve itself needs no headers: it loads libgssapi_krb5.so.2 at run time). Idempotent and quiet; needs python3
# (3.11 on Debian 12) with venv, and root with apt-get for the Debian packages (each skipped
# when its file exists).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)

# Install a Debian package unless PROBE (a glob) already matches an executable.
install_deb() {
    probe=$1 package=$2 purpose=$3
    for f in $probe; do
        [ -x "$f" ] && return 0
    done
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        echo "install.sh: no $probe; install $package as root ($purpose)" >&2
        return 1
    fi
    # Quiet unless something fails; then show apt's own words.
    log=$(mktemp)
    # Refresh the package lists first when they do not know the package (a fresh container has
    # none), and once more when an install from old lists fails.
    if apt-cache show "$package" >/dev/null 2>&1 && apt_install "$log" "$package"; then
        rm -f "$log"
        return 0
    fi
    if apt-get update -qq >"$log" 2>&1 && apt_install "$log" "$package"; then
        rm -f "$log"
        return 0
    fi
    cat "$log" >&2
    rm -f "$log"
    return 1
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$2" >"$1" 2>&1
}

install_sshd() {
    install_deb /usr/sbin/sshd openssh-server "the SSH tests need it"
}

# Debian's PostgreSQL server (the queue tests start throwaway clusters with tests/peers/postgres.sh).
install_postgres() {
    install_deb '/usr/lib/postgresql/*/bin/initdb' postgresql "the queue tests need it"
}

# Debian's Chromium: tests/it/run_report.rs renders the run reports in it, headless.
install_chromium() {
    install_deb /usr/bin/chromium chromium "the run-report test opens its pages in headless Chromium"
}

install_pywinrm() {
    venv="$root/.venv"
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import winrm, kerberos' 2>/dev/null; then
        return 0
    fi
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 without python3-venv has no ensurepip: create the venv without pip
        # and bootstrap pip from PyPA's get-pip.py (python's own urllib; no curl needed).
        python3 -m venv --clear --without-pip "$venv"
        "$venv/bin/python" -c 'import urllib.request; exec(urllib.request.urlopen("https://bootstrap.pypa.io/get-pip.py").read())' --quiet
    fi
    # pywinrm's `kerberos` extra is pykerberos, built here against MIT's libgssapi_krb5
    # (krb5-config from libkrb5-dev, installed first).
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pywinrm[kerberos]'
    "$venv/bin/python" -c 'import winrm, kerberos'
}

# Ansible from PyPI: the `ansible` package (ansible-core plus the collections, among them
# ansible.windows, whose module names the corpus uses; Galaxy is not needed).
install_ansible() {
    venv="$root/.venv"
    if [ -x "$venv/bin/ansible-playbook" ] &&
        [ -d "$venv/lib/python3"*"/site-packages/ansible_collections/ansible/windows" ]; then
        return 0
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check ansible
    "$venv/bin/ansible-playbook" --version >/dev/null
}

# MIT Kerberos: the KDC and its admin tools (krb5kdc.sh), kinit/klist, and the development
# files (krb5-config, headers) that pip builds pykerberos (pywinrm's Kerberos) against.
install_kerberos() {
    install_deb /usr/sbin/krb5kdc krb5-kdc "the Kerberos tests need a KDC"
    install_deb /usr/sbin/kadmin.local krb5-admin-server "the Kerberos tests create principals with it"
    install_deb /usr/bin/kinit krb5-user "salve doctor's Kerberos checks and the tests use kinit"
    install_deb /usr/bin/krb5-config libkrb5-dev "pywinrm's pykerberos builds against the krb5 headers"
    install_deb '/usr/lib/*/faketime/libfaketime.so.1' libfaketime "the clock-skew test runs a KDC with its clock off"
}

install_kerberos
install_pywinrm
install_ansible
install_sshd
install_postgres
install_chromium
