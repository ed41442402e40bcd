#!/bin/sh
# CI smoke test of the benchmark harness: 20 lab hosts, salve and the pywinrm pool, one run of
# each scenario in both auth modes. It prints the table and asserts nothing about timing; it
# fails only if a tool fails functionally: salve's exit code is not 0 on the healthy fleet,
# salve used more than one logon (NTLM handshake / Basic connection) or more than one shell
# on some host, or the pywinrm pool failed. Then benches/scaleout.py --smoke (see below).
#
# Needs pywinrm in .venv (tests/peers/install.sh) and a salve binary: $SALVE if set, else the
# newest of the debug/release builds in $CARGO_TARGET_DIR or target/, else `cargo build`.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sh tests/peers/install.sh
target=${CARGO_TARGET_DIR:-$root/target}
salve=${SALVE:-}
if [ -z "$salve" ]; then
    for candidate in "$target/debug/salve" "$target/release/salve"; do
        if [ -x "$candidate" ] && { [ -z "$salve" ] || [ "$candidate" -nt "$salve" ]; }; then
            salve=$candidate
        fi
    done
fi
if [ -z "$salve" ]; then
    cargo build --bin salve
    salve=$target/debug/salve
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/salve-bench-smoke.XXXXXX")
trap 'rm -rf "$out"' EXIT
echo "benches/smoke.sh: using $salve" >&2
# compare.py exits non-zero when a salve run failed; the checks below say why.
timeout 300 python3 benches/compare.py --quick --salve "$salve" --scenarios a,b \
    --tool-timeout 120 --work "$out/work" --out "$out/results" >/dev/null || true
if [ ! -f "$out/results/raw.json" ]; then
    echo "smoke: FAIL the harness did not finish (see the log above)" >&2
    exit 1
fi
cat "$out/results/RESULTS.md"
python3 - "$out/results/raw.json" <<'PY'
import json, sys
records = json.load(open(sys.argv[1]))["records"]
problems = []
for r in records:
    where = f"{r['tool']} scenario {r['scenario']} {r['auth']} N={r['size']}"
    if r["exit"] != 0 or r["timed_out"]:
        problems.append(f"{where}: exit code {r['exit']}{' (timed out)' if r['timed_out'] else ''}")
    if r["tool"].startswith("salve") and (r["logons_max"] > 1 or r["shells_max"] > 1):
        problems.append(f"{where}: {r['logons_max']} logons and {r['shells_max']} shells on "
                        "the busiest host; expected at most one of each per host per run")
if not records:
    problems.append("no measurements were recorded")
for p in problems:
    print(f"smoke: FAIL {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
# The scale-out queue on 40 hosts in 4 tenants (2 runners, a throwaway PostgreSQL): every item
# done once, every host's commands as in the single-process run, every exit code 0 (about 10 s).
timeout 300 python3 benches/scaleout.py --smoke --salve "$salve" --work "$out/queue"
echo "benches/smoke.sh: ok" >&2
