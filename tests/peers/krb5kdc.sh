#!/bin/sh
# A throwaway MIT Kerberos realm for the Kerberos tests, from Debian's KDC binaries
# (krb5-kdc, krb5-admin-server, krb5-user; tests/peers/install.sh installs them). Everything lives
# in DIR; nothing system-wide is read or changed: the realm's krb5.conf is DIR/krb5.conf, meant
# for KRB5_CONFIG, its KDC profile DIR/kdc.conf for KRB5_KDC_PROFILE.
#
#   krb5kdc.sh start DIR PORT REALM USER PASSWORD HOST...
#       create REALM (database, stash) in DIR, a user principal USER@REALM with PASSWORD, a
#       service principal HTTP/HOST@REALM per HOST with its keys in DIR/http.keytab (as
#       `setspn` + `ktpass` give a Windows host), then start krb5kdc on 127.0.0.1:PORT (UDP and
#       TCP) and wait until it answers. The realm allows 300 s of clock skew (MIT's default, as
#       Active Directory's "Maximum tolerance for computer clock synchronization"); with
#       KDC_CLOCK_OFFSET set (e.g. +600s) the KDC's clock runs that far ahead (libfaketime).
#   krb5kdc.sh kadmin DIR QUERY...   run one kadmin.local query on the realm (tests use it to
#       expire a ticket's principal, remove an SPN...)
#   krb5kdc.sh stop DIR              stop the KDC
#
# Quiet unless something fails.
set -eu

cmd=${1:-}
dir=${2:-}
usage() {
    echo "usage: $0 start DIR PORT REALM USER PASSWORD HOST... | kadmin DIR QUERY... | stop DIR" >&2
    exit 64
}
[ -n "$cmd" ] && [ -n "$dir" ] || usage

for tool in /usr/sbin/krb5kdc /usr/sbin/kdb5_util /usr/sbin/kadmin.local; do
    if [ ! -x "$tool" ]; then
        echo "krb5kdc.sh: no $tool (run tests/peers/install.sh)" >&2
        exit 69
    fi
done

export KRB5_CONFIG="$dir/krb5.conf" KRB5_KDC_PROFILE="$dir/kdc.conf"

case "$cmd" in
start)
    [ $# -ge 7 ] || usage
    port=$3 realm=$4 user=$5 password=$6
    shift 6
    mkdir -p "$dir"
    # AES-256 with SHA-1, the enctype Windows Server uses by default for accounts and tickets.
    cat >"$dir/krb5.conf" <<EOF
[libdefaults]
    default_realm = $realm
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    kdc_timesync = 0
    clockskew = 300
    default_tkt_enctypes = aes256-cts-hmac-sha1-96
    default_tgs_enctypes = aes256-cts-hmac-sha1-96
    permitted_enctypes = aes256-cts-hmac-sha1-96
    default_ccache_name = FILE:$dir/ccache.default

[realms]
    $realm = {
        kdc = 127.0.0.1:$port
    }

[domain_realm]
EOF
    for host in "$@"; do
        echo "    $host = $realm" >>"$dir/krb5.conf"
    done
    cat >"$dir/kdc.conf" <<EOF
[kdcdefaults]
    kdc_ports = $port
    kdc_tcp_ports = $port
    kdc_listen = 127.0.0.1:$port
    kdc_tcp_listen = 127.0.0.1:$port

[realms]
    $realm = {
        database_name = $dir/principal
        key_stash_file = $dir/stash
        acl_file = $dir/kadm5.acl
        max_life = 10h
        max_renewable_life = 0
        supported_enctypes = aes256-cts-hmac-sha1-96:normal
        master_key_type = aes256-cts-hmac-sha1-96
    }

[logging]
    kdc = FILE:$dir/kdc.log
EOF
    : >"$dir/kadm5.acl"
    if ! kdb5_util create -s -r "$realm" -P "master-$$" >"$dir/setup.log" 2>&1; then
        cat "$dir/setup.log" >&2
        exit 1
    fi
    q() { kadmin.local -r "$realm" -q "$1" >>"$dir/setup.log" 2>&1 || { cat "$dir/setup.log" >&2; exit 1; }; }
    # Preauthentication required, as Active Directory requires it by default: a wrong
    # password is refused by the KDC (PREAUTH_FAILED, a failed logon) rather than answered.
    q "addprinc +requires_preauth -pw $password $user"
    for host in "$@"; do
        q "addprinc -randkey HTTP/$host"
        q "ktadd -k $dir/http.keytab HTTP/$host"
    done
    # KDC_CLOCK_OFFSET (e.g. +600s) runs the KDC with its clock that far off (libfaketime), to
    # test what a client whose clock is skewed from the domain controller's sees.
    # (libfaketime preloaded directly: the `faketime` wrapper waits for the daemonised KDC.)
    if [ -n "${KDC_CLOCK_OFFSET:-}" ]; then
        lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1)
        if [ -z "$lib" ]; then
            echo "krb5kdc.sh: libfaketime missing (run tests/peers/install.sh)" >&2
            exit 69
        fi
        LD_PRELOAD=$lib FAKETIME=$KDC_CLOCK_OFFSET /usr/sbin/krb5kdc -P "$dir/kdc.pid" -r "$realm"
    else
        /usr/sbin/krb5kdc -P "$dir/kdc.pid" -r "$realm"
    fi
    # Wait until it answers: an AS request for a principal that does not exist must come back
    # as "not found", which proves the KDC read the database and listens.
    i=0
    while :; do
        out=$(KRB5CCNAME="MEMORY:probe" kinit nobody </dev/null 2>&1 || true)
        case "$out" in
        *"not found"*) break ;;
        esac
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "krb5kdc.sh: the KDC did not answer: $out" >&2
            cat "$dir/kdc.log" >&2 2>/dev/null || true
            exit 1
        fi
        sleep 0.1
    done
    ;;
kadmin)
    shift 2
    realm=$(sed -n 's/^ *default_realm = //p' "$dir/krb5.conf")
    for query in "$@"; do
        if ! kadmin.local -r "$realm" -q "$query" >"$dir/kadmin.log" 2>&1 \
            || grep -qiE "error|not found|unknown" "$dir/kadmin.log"; then
            cat "$dir/kadmin.log" >&2
            exit 1
        fi
    done
    ;;
stop)
    if [ -f "$dir/kdc.pid" ]; then
        kill "$(cat "$dir/kdc.pid")" 2>/dev/null || true
        rm -f "$dir/kdc.pid"
    fi
    ;;
*) usage ;;
esac
