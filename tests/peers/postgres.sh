#!/bin/sh
# A throwaway PostgreSQL cluster for the queue tests, from Debian's server binaries
# (/usr/lib/postgresql/*/bin; tests/peers/install.sh installs them).
#
#   postgres.sh start DIR PORT   initdb in DIR/data (trust auth, superuser `postgres`), listen on
#                                127.0.0.1:PORT with its socket in DIR; waits until it accepts
#   postgres.sh stop DIR         stop it (fast), or kill the postmaster if that fails
#   postgres.sh resume DIR PORT  start a stopped cluster again on its data in DIR (same port), as
#                                after a database outage; waits until it accepts
#
# initdb refuses to run as root, so under root (CI) the cluster runs as the `postgres` user
# (created by Debian's package) and DIR is handed to it. Quiet unless something fails.
set -eu

bindir() {
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && echo "$d"
    done | sort -V | tail -n 1
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Run the server on DIR/data, listening on 127.0.0.1:$1.
serve() {
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-p $1 -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
        cat "$dir/server.log" >&2
        exit 1
    fi
}

cmd=${1:-}
dir=${2:-}
usage() {
    echo "usage: $0 start DIR PORT | stop DIR | resume DIR PORT" >&2
    exit 64
}

[ -n "$cmd" ] && [ -n "$dir" ] || usage
bin=$(bindir)
if [ -z "$bin" ]; then
    echo "postgres.sh: no PostgreSQL server under /usr/lib/postgresql (run tests/peers/install.sh)" >&2
    exit 69
fi

case "$cmd" in
start)
    port=${3:?port}
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if ! as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        exit 1
    fi
    serve "$port"
    ;;
resume)
    serve "${3:?port}"
    ;;
stop)
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 10 stop >/dev/null 2>&1; then
        pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
*)
    usage
    ;;
esac
