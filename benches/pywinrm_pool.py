#!/usr/bin/env python3
"""The plain-pywinrm peer of the benchmark: a thread pool that runs scripts on every host.

Usage: pywinrm_pool.py HOSTS_JSON --workers N --script TEXT [--script TEXT ...]
                       [--op-timeout S] [--read-timeout S]

HOSTS_JSON is a list of {"name", "host", "port", "scheme", "transport", "user", "password",
"ca"} objects (compare.py writes it). Each worker takes one host, opens one WinRM shell, runs
the scripts in order as `powershell.exe -NoProfile -NonInteractive -EncodedCommand ...`, then
closes the shell: the best a hand-written pywinrm script does (one connection, one NTLM
handshake and one shell per host), not the one-shell-per-call `Session.run_ps`.

Prints one JSON line {"hosts", "ok", "failed": [{"host", "error"}]} and exits 0 only if every
script on every host exited 0.
"""
import argparse
import base64
import json
import sys
from concurrent.futures import ThreadPoolExecutor

from winrm.protocol import Protocol


def encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def run_host(h: dict, scripts: list, op_timeout: int, read_timeout: int) -> str | None:
    """Run every script on one host; None on success, else the error text."""
    https = h["scheme"] == "https"
    kwargs = dict(
        endpoint=f'{h["scheme"]}://{h["host"]}:{h["port"]}/wsman',
        transport=h["transport"],
        username=h["user"],
        password=h["password"],
        operation_timeout_sec=op_timeout,
        read_timeout_sec=read_timeout,
        server_cert_validation="validate" if https else "ignore",
        message_encryption="auto",
    )
    if https:
        kwargs["ca_trust_path"] = h["ca"]
    try:
        proto = Protocol(**kwargs)
        shell = proto.open_shell()
        try:
            for script in scripts:
                args = ["-NoProfile", "-NonInteractive", "-EncodedCommand", encoded(script)]
                cid = proto.run_command(shell, "powershell.exe", args)
                _out, _err, rc = proto.get_command_output(shell, cid)
                proto.cleanup_command(shell, cid)
                if rc != 0:
                    return f"exit code {rc}"
        finally:
            proto.close_shell(shell)
    except Exception as e:  # noqa: BLE001 - every failure is data in the summary
        return f"{type(e).__name__}: {e}"
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("hosts_json")
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--script", action="append", required=True)
    p.add_argument("--op-timeout", type=int, default=20)
    p.add_argument("--read-timeout", type=int, default=30)
    a = p.parse_args()
    with open(a.hosts_json, encoding="utf-8") as f:
        hosts = json.load(f)
    with ThreadPoolExecutor(max_workers=max(1, a.workers)) as pool:
        errors = list(pool.map(
            lambda h: run_host(h, a.script, a.op_timeout, a.read_timeout), hosts))
    failed = [{"host": h["name"], "error": e} for h, e in zip(hosts, errors) if e]
    print(json.dumps({"hosts": len(hosts), "ok": len(hosts) - len(failed), "failed": failed[:20]}))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
