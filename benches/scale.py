#!/usr/bin/env python3
"""Inventory and check cost against fleet size: `salve inventory --json` and
`salve check playbooks/hello.yml` on MSP-shaped inventories of 1,000 to 50,000 hosts, for this
checkout's salve and, side by side in the same run, a baseline binary (another commit's build)
and `ansible-inventory --list` when it is installed.

    python3 benches/scale.py --baseline /tmp/salve-base [--sizes 1000,10000,50000] [--runs 3]
        [--lab-hosts 1000] [--fleet-hosts 10000 --fleet-forks 1000,2000]

--lab-hosts runs a silent 30-s step (3 s real) and three short tasks on a lab fleet at forks =
hosts; --fleet-hosts runs the silent step on a larger fleet (one lab process, pinned to core 1)
at each of --fleet-forks. Lab rows give wall time against the floor (ceil(hosts / forks) waves
of the simulated work), the controller's CPU per host and per host-task, and its peak RSS.

The inventory has the shape `salve lab serve` writes (crates/salve-lab/src/inventory.rs): all
connection settings and 100 package-source entries in `all.vars`, 50 tenants as groups with
`salve_tenant`, and per host its `ansible_host` and `ansible_port`. Tools run one after another,
alternating, pinned to core 0 when `taskset` exists; each figure is the median of --runs runs,
wall time and peak RSS from GNU time. The machine may be shared: the load average at the start
and the end is written with the results, and the ratio to the baseline measured in the same run
is the figure to trust.

Writes benches/results/scale.md (the command, the machine, a table), scale.json and scale.svg
(cost per host against hosts; a flat line is what scaling linearly looks like).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from compare import (BENCH, ROOT, SILENT_SIM_SECONDS, VENV, Lab, build_salve, log, machine,
                     measure, pin, tool_env)

TENANTS = 50
SOURCES = 100
PLAYBOOK = ROOT / "playbooks/hello.yml"


def write_inventory(path: Path, hosts: int) -> None:
    """The lab's inventory shape for `hosts` hosts in TENANTS tenants."""
    out = ["all:\n  vars:\n",
           "    ansible_connection: winrm\n    ansible_winrm_transport: ntlm\n",
           "    ansible_winrm_scheme: http\n    ansible_user: \"lab\\\\salve\"\n",
           "    ansible_password: \"env:SALVE_LAB_PASSWORD\"\n",
           "    ansible_become_user: \"lab\\\\salve\"\n",
           "    ansible_become_password: \"env:SALVE_LAB_PASSWORD\"\n",
           "    salve_reboot_poll_seconds: 1\n    salve_update_sources:\n"]
    for i in range(SOURCES):
        label = f"2019 CU{i // 10 + 1} KB50{i:05d}"
        out.append(f"      \"{label}\": {{unc: '\\\\lab-repo\\exchange\\Exchange2019-KB50{i:05d}-x64-en.msp', "
                   f"sha256: \"{i:064x}\"}}\n")
    out.append("  children:\n")
    per = math.ceil(hosts / TENANTS)
    n = 0
    for t in range(TENANTS):
        out.append(f"    tenant{t:02d}:\n      vars:\n        salve_tenant: \"tenant{t:02d}\"\n      hosts:\n")
        for _ in range(per):
            if n == hosts:
                break
            out.append(f"        ex{n:05d}.tenant{t:02d}.lab:\n          ansible_host: 127.{1 + n // 65536}.{n // 256 % 256}.{n % 256}\n"
                       f"          ansible_port: 5985\n")
            n += 1
    path.write_text("".join(out))


def commands(tool: str, binary: Path | None, inv: Path) -> dict[str, list[str]]:
    if tool == "ansible":
        return {"inventory --json": [str(VENV / "bin/ansible-inventory"), "-i", str(inv), "--list"]}
    return {
        "inventory --json": [str(binary), "inventory", "--json", "-i", str(inv)],
        "check hello.yml": [str(binary), "check", str(PLAYBOOK), "-i", str(inv), "--all-tenants"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,50000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--salve", type=Path, help="salve binary to measure (default: build release)")
    p.add_argument("--baseline", type=Path, help="another salve binary, measured side by side")
    p.add_argument("--baseline-max", type=int, default=10000,
                   help="run the baseline up to this many hosts (a build that copies group "
                        "variables into every host needs about 300 KB per host)")
    p.add_argument("--ansible-max", type=int, default=1000,
                   help="run ansible-inventory (when installed in .venv) up to this many hosts")
    p.add_argument("--lab-hosts", type=int, default=0,
                   help="also run benches/playbooks/silent.yml on a lab fleet of this many hosts "
                        "(its own inventory, package sources included) at forks = hosts")
    p.add_argument("--fleet-hosts", type=int, default=0,
                   help="also run benches/playbooks/silent.yml on a lab fleet of this many hosts "
                        "(e.g. 10000) at each of --fleet-forks")
    p.add_argument("--fleet-forks", default="1000,2000")
    p.add_argument("--remediation-hosts", type=int, default=0,
                   help="also run playbooks/proxylogon.yml on the lab's default fleet of this "
                        "many hosts at forks = hosts")
    p.add_argument("--remediation-time-scale", type=float, default=600.0)
    p.add_argument("--time-scale", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=BENCH / "results")
    a = p.parse_args(sys.argv[1:])
    salve = a.salve or build_salve("release")
    tools: dict[str, Path | None] = {"salve": salve}
    if a.baseline:
        tools["baseline"] = a.baseline
    if (VENV / "bin/ansible-inventory").exists():
        tools["ansible"] = None
    meta = machine()
    meta.update(date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                command="python3 benches/scale.py " + " ".join(sys.argv[1:]),
                tenants=TENANTS, package_sources=SOURCES)
    env = dict(os.environ, SALVE_LAB_PASSWORD="unused", NO_COLOR="1")
    rows = []
    with tempfile.TemporaryDirectory(prefix="salve-scale-") as tmp:
        work = Path(tmp)
        for n in [int(s) for s in a.sizes.split(",") if s]:
            inv = work / f"inventory-{n}.yml"
            write_inventory(inv, n)
            log(f"{n} hosts: inventory of {inv.stat().st_size / 1e6:.1f} MB")
            runs: dict[tuple[str, str], list[dict]] = {}
            for r in range(a.runs):
                for tool, binary in tools.items():
                    if (tool == "ansible" and n > a.ansible_max) or (tool == "baseline" and n > a.baseline_max):
                        continue
                    for case, cmd in commands(tool, binary, inv).items():
                        m = measure(pin(0) + cmd, env, 600, work / f"{tool}-{n}-{r}")
                        if m["exit"] != 0:
                            err = (work / f"{tool}-{n}-{r}.stderr").read_text()[-2000:]
                            raise SystemExit(f"{tool} {case} at {n} hosts failed: {err}")
                        runs.setdefault((tool, case), []).append(m)
            out_size = (work / f"salve-{n}-0.stdout").stat().st_size
            for (tool, case), ms in runs.items():
                wall = statistics.median(m["wall_s"] for m in ms)
                rss = statistics.median(m["max_rss_mb"] or 0 for m in ms)
                rows.append({"tool": tool, "case": case, "hosts": n, "wall_s": round(wall, 3),
                             "max_rss_mb": rss, "us_per_host": round(wall / n * 1e6, 1),
                             "kb_per_host": round(rss * 1024 / n, 1), "runs": len(ms),
                             "command": " ".join(commands(tool, Path(tool), Path(f"inventory-{n}.yml"))[case])
                             .replace(f"{ROOT}/", "")})
                log(f"  {tool:8} {case:17} {wall:7.2f} s {rss:8.1f} MB")
            meta[f"listing_bytes_{n}"] = out_size
        binaries = {t: b for t, b in tools.items() if b}
        try:
            rows += lab_stages(a, binaries, work)
        finally:
            write_results(a, rows, meta)
    return 0


def lab_stages(a: argparse.Namespace, binaries: dict[str, Path], work: Path) -> list[dict]:
    rows: list[dict] = []
    try:
        if a.lab_hosts:
            cases = [("silent.yml", a.lab_hosts), ("short3.yml", a.lab_hosts)]
            rows += lab_run(a, binaries, work, a.lab_hosts, cases, 19960)
        if a.remediation_hosts:
            rows += remediation_run(a, binaries, work)
        if a.fleet_hosts:
            raise_open_files(a.fleet_hosts + max(int(f) for f in a.fleet_forks.split(",")) + 1024)
            cases = [("silent.yml", int(f)) for f in a.fleet_forks.split(",")]
            rows += lab_run(a, binaries, work, a.fleet_hosts, cases, 19961, https=False)
    except (SystemExit, RuntimeError) as e:
        # What was measured before a stage failed is still written.
        log(f"stopped: {e}")
    return rows


def write_results(a: argparse.Namespace, rows: list[dict], meta: dict) -> None:
    meta["load_at_end"] = os.getloadavg()[0]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "scale.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (a.out / "scale.md").write_text(markdown(rows, meta))
    svg_plot(rows, a.out / "scale.svg")
    print(markdown(rows, meta))


def lab_run(a: argparse.Namespace, tools: dict[str, Path], work: Path, n: int,
            cases: list[tuple[str, int]], admin_port: int, https: bool = True) -> list[dict]:
    """Playbooks on a lab fleet of n hosts (pinned to core 1), each salve on core 0 at the
    forks given per case: wall time against the floor (ceil(n / forks) waves of the simulated
    work), CPU (per host and per host-task) and the controller's peak RSS. The journal goes to
    the run's own state directory."""
    lab_work = work / f"lab-{n}"
    lab_work.mkdir()
    lab = Lab(tools["salve"], n, lab_work, a.time_scale, admin_port, https=https)
    env = dict(tool_env(lab_work), SALVE_STATE_DIR=str(lab_work / "state"))
    # playbook: (simulated seconds per host-task wave, host-tasks per host)
    playbooks = {"silent.yml": (SILENT_SIM_SECONDS / a.time_scale, 1), "short3.yml": (0.0, 3)}
    rows = []
    try:
        runs: dict[tuple[str, str, int], list[dict]] = {}
        for r in range(a.runs):
            for playbook, forks in cases:
                for tool, binary in tools.items():
                    cmd = [str(binary), "run", "--json", "--no-progress", "--forks", str(forks),
                           str(BENCH / "playbooks" / playbook), "-i", str(lab.inventory_out)]
                    out = lab_work / f"{tool}-{playbook}-{forks}-{r}"
                    lab_cpu = lab.cpu_seconds()
                    m = measure(pin(0) + cmd, env, 900, out)
                    m["lab_cpu_s"] = round(lab.cpu_seconds() - lab_cpu, 2)
                    m["not_ok"] = hosts_not_ok(out.with_suffix(".stdout"))
                    if m["exit"] != 0:
                        log(f"  {tool} {playbook} at forks {forks} exited {m['exit']}, "
                            f"{m['not_ok']} hosts not ok: "
                            f"{out.with_suffix('.stderr').read_text()[-600:]}")
                    runs.setdefault((tool, playbook, forks), []).append(m)
    finally:
        lab.stop()
    for (tool, playbook, forks), ms in runs.items():
        wave, tasks = playbooks[playbook]
        floor = math.ceil(n / forks) * wave
        wall = statistics.median(m["wall_s"] for m in ms)
        rss = statistics.median(m["max_rss_mb"] or 0 for m in ms)
        cpu = statistics.median(m["cpu_s"] for m in ms)
        case = f"run {playbook} (lab)" if forks == n else f"run {playbook} (lab, forks {forks})"
        rows.append({"tool": tool, "case": case, "hosts": n, "forks": forks, "wall_s": wall,
                     "max_rss_mb": rss, "cpu_s": cpu, "floor_s": floor,
                     "cpu_ms_per_host": round(cpu / n * 1e3, 3),
                     "cpu_ms_per_host_task": round(cpu / (n * tasks) * 1e3, 3),
                     "us_per_host": round(wall / n * 1e6, 1), "kb_per_host": round(rss * 1024 / n, 1),
                     "runs": len(ms), "load_after": os.getloadavg()[0],
                     "lab_cpu_s": statistics.median(m["lab_cpu_s"] for m in ms),
                     "exit": max(m["exit"] for m in ms), "not_ok": max(m["not_ok"] for m in ms),
                     "command": f"{tool} run --json --no-progress --forks {forks} benches/playbooks/{playbook} -i lab-inventory.yml"})
        log(f"  {tool:8} {playbook} on {n} hosts at forks {forks}: {wall:.2f} s (floor {floor:.1f} s), "
            f"CPU {cpu:.2f} s, {rss:.1f} MB")
    return rows


def raise_open_files(need: int) -> None:
    """The lab listens on a port per host (5985 only: the fleet runs without HTTPS) and the
    controller holds a socket per host in flight: raise this process's open-file limit
    (inherited by both) to `need` when it is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    except (ValueError, OSError) as e:
        raise SystemExit(f"--fleet-hosts needs {need} open files (limit {soft}/{hard}): {e}; "
                         f"raise it (ulimit -n {need}, or /etc/security/limits.conf) and rerun")


# The lab's default durations (crates/salve-lab/src/state.rs, `Durations`), simulated minutes.
CU_MIN, SU_MIN, REBOOT_MIN, REBOOT_DELAY_S = 60, 30, 8, 5


def remediation_run(a: argparse.Namespace, tools: dict[str, Path], work: Path) -> list[dict]:
    """playbooks/proxylogon.yml on the lab's default fleet of --remediation-hosts hosts (lab on
    core 1, at --remediation-time-scale), each salve on core 0 at forks = hosts, a fresh lab
    per run. Critical-path floor: the simulated work alone. From the lab's log, each host's
    installs (a CU takes CU_MIN, an SU, .NET or AD preparation SU_MIN) and restarts (REBOOT_MIN
    plus the delay before going down); from the run's `batch_started` events, its batches
    (`serial`, and DAG members one at a time). Batches run one after another, so the floor is
    the sum over batches of the batch's slowest host, divided by the time scale."""
    n, scale = a.remediation_hosts, a.remediation_time_scale
    env_base = tool_env(work)
    runs: dict[str, list[dict]] = {}
    floors: dict[str, list[float]] = {}
    for r in range(a.runs):
        for tool, binary in tools.items():
            # The run patches the fleet: each run gets a fresh lab.
            lab_work = work / f"remediation-{tool}-{r}"
            lab_work.mkdir()
            lab = Lab(tools["salve"], n, lab_work, scale, 19962, mix=True)
            env = dict(env_base, SALVE_STATE_DIR=str(lab_work / "state"))
            try:
                cmd = [str(binary), "run", "--json", "--no-progress", "--all-tenants",
                       "--forks", str(n), str(ROOT / "playbooks/proxylogon.yml"),
                       "-i", str(lab.inventory_out)]
                out = lab_work / "run"
                lab_cpu = lab.cpu_seconds()
                m = measure(pin(0) + cmd, env, 900, out)
                m["lab_cpu_s"] = round(lab.cpu_seconds() - lab_cpu, 2)
                floors.setdefault(tool, []).append(
                    critical_path(json.loads(lab.fetch("/log")), out.with_suffix(".stdout"), scale))
            finally:
                lab.stop()
            # 2: the planted failures (a compromised host, a failing install, an unreachable
            # host) are reported as failed, by design.
            if m["exit"] not in (0, 2):
                raise SystemExit(f"{tool} proxylogon.yml failed: {out.with_suffix('.stderr').read_text()[-2000:]}")
            runs.setdefault(tool, []).append(m)
    rows = []
    for tool, ms in runs.items():
        wall = statistics.median(m["wall_s"] for m in ms)
        rss = statistics.median(m["max_rss_mb"] or 0 for m in ms)
        cpu = statistics.median(m["cpu_s"] for m in ms)
        floor = statistics.median(floors[tool])
        rows.append({"tool": tool, "case": "run proxylogon.yml (lab mix)", "hosts": n, "forks": n,
                     "wall_s": wall, "max_rss_mb": rss, "cpu_s": cpu, "floor_s": round(floor, 2),
                     "cpu_ms_per_host": round(cpu / n * 1e3, 3), "cpu_ms_per_host_task": None,
                     "us_per_host": round(wall / n * 1e6, 1), "kb_per_host": round(rss * 1024 / n, 1),
                     "runs": len(ms), "load_after": os.getloadavg()[0],
                     "lab_cpu_s": statistics.median(m["lab_cpu_s"] for m in ms),
                     "command": f"{tool} run --json --no-progress --all-tenants --forks {n} "
                                f"playbooks/proxylogon.yml -i lab-inventory.yml "
                                f"(lab: salve lab serve --hosts {n} --time-scale {scale:g})"})
        log(f"  {tool:8} proxylogon.yml on {n} hosts: {wall:.2f} s (floor {floor:.1f} s), "
            f"CPU {cpu:.2f} s, {rss:.1f} MB")
    return rows


def hosts_not_ok(events: Path) -> int:
    """Hosts whose outcome in the run's summary (its last JSON line) is not ok."""
    lines = events.read_text().splitlines() if events.exists() else []
    try:
        summary = json.loads(lines[-1])["summary"]
    except (IndexError, KeyError, ValueError):
        return -1
    return sum(1 for h in summary["hosts"] if h["outcome"] != "ok")


def critical_path(log: list[dict], events: Path, scale: float) -> float:
    """The run's floor in seconds (see remediation_run)."""
    minutes: dict[str, float] = {}
    for e in log:
        kind = e["event"].get("kind")
        if kind == "install_started":
            work = CU_MIN if e["event"]["update"] == "cu" else SU_MIN
        elif kind == "reboot_started":
            work = REBOOT_MIN + REBOOT_DELAY_S / 60
        else:
            continue
        minutes[e["host"]] = minutes.get(e["host"], 0) + work
    floor = 0.0
    for line in events.read_text().splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "batch_started":
            floor += max((minutes.get(h, 0) for h in event.get("hosts", [])), default=0)
    return round(floor * 60 / scale, 2)


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Inventory and check cost against fleet size",
        "",
        f"`{meta['command']}`, {meta['date']}: {meta['nproc']} cores ({meta['cpu']}), "
        f"{meta['ram_gib']} GiB; load average {meta['load_at_start']:.1f} at the start and "
        f"{meta['load_at_end']:.1f} at the end (other builds shared the machine). Inventory: "
        f"{meta['tenants']} tenants, {meta['package_sources']} package sources in `all.vars`, "
        "the shape `salve lab serve` writes. Median of each tool's runs, alternating; wall time "
        "and peak RSS from GNU time; `salve` is this checkout, `baseline` the binary given with "
        "`--baseline`.",
        "",
        "| case | hosts | tool | wall | peak RSS | per host | salve compared |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    others = {(r["tool"], r["case"], r["hosts"]): r for r in rows if r["tool"] != "salve"}
    for r in sorted(rows, key=lambda r: (r["case"], r["hosts"], r["tool"])):
        ratios = []
        for other in ("baseline", "ansible") if r["tool"] == "salve" else ():
            o = others.get((other, r["case"], r["hosts"]))
            if o:
                ratios.append(f"{o['wall_s'] / r['wall_s']:.1f}× faster and "
                              f"{o['max_rss_mb'] / max(r['max_rss_mb'], 0.1):.1f}× less memory than {other}")
        if "floor_s" in r:
            over = (f" ({(r['wall_s'] / r['floor_s'] - 1) * 100:.0f} % over)" if r["floor_s"] else "")
            per_task = (f", {r['cpu_ms_per_host_task']:.2f} ms per host-task"
                        if r.get("cpu_ms_per_host_task") is not None else "")
            lab = f"; lab CPU {r['lab_cpu_s']:.1f} s" if r.get("lab_cpu_s") is not None else ""
            if r.get("exit"):
                lab += f"; exit {r['exit']}, {r['not_ok']} hosts not ok"
            ratios.insert(0, f"floor {r['floor_s']:.1f} s{over}, CPU {r['cpu_s']:.2f} s "
                             f"({r['cpu_ms_per_host']:.2f} ms per host{per_task}){lab}")
        ratio = "; ".join(ratios)
        lines.append(f"| `{r['case']}` | {r['hosts']:,} | {r['tool']} | {r['wall_s']:.2f} s | "
                     f"{r['max_rss_mb']:.0f} MB | {r['us_per_host']:.0f} µs, {r['kb_per_host']:.1f} KB | {ratio} |")
    if any(r["case"].startswith("run proxylogon") for r in rows):
        lines += ["", "The remediation's floor is the sum over the run's batches of each batch's "
                  "slowest host's simulated installs and restarts (the lab's log). A DAG's lane "
                  "runs beside the other hosts' batches, so the true floor is lower: the overhead "
                  "shown is a lower bound. Lab CPU is the lab process's, on its own core."]
    lines += ["", "Commands (in the harness's temporary directory):", ""]
    seen = set()
    for r in rows:
        if r["command"] not in seen:
            seen.add(r["command"])
            lines.append(f"- `{r['command']}`")
    return "\n".join(lines) + "\n"


def svg_plot(rows: list[dict], path: Path) -> None:
    """Wall time per host (µs, log scale) against hosts (log scale), one line per tool and case."""
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        if "floor_s" not in r:  # a lab run's cost per host is its floor's
            series.setdefault(f"{r['tool']}: {r['case']}", []).append((r["hosts"], r["us_per_host"]))
    xs = [h for s in series.values() for h, _ in s]
    ys = [v for s in series.values() for _, v in s if v > 0]
    if not xs or not ys:
        return
    w, h, m = 760, 420, 70
    x0, x1 = math.log10(min(xs)) - 0.1, math.log10(max(xs)) + 0.1
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    y1 = max(y1, y0 + 1)

    def px(x: float) -> float:
        return m + (math.log10(x) - x0) / (x1 - x0) * (w - 2 * m)

    def py(y: float) -> float:
        return h - m - (math.log10(y) - y0) / (y1 - y0) * (h - 2 * m)

    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14">Wall time per host against hosts (log–log; flat = linear)</text>']
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{m}" x2="{w - m}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{m - 6}" y="{y + 4}" text-anchor="end">{10 ** e:g} µs</text>')
    for x in sorted(set(xs)):
        out.append(f'<line x1="{px(x)}" x2="{px(x)}" y1="{m}" y2="{h - m}" stroke="#eee"/>')
        out.append(f'<text x="{px(x)}" y="{h - m + 16}" text-anchor="middle">{x:,} hosts</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        c = colors[i % len(colors)]
        pts = sorted(pts)
        path_d = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(pts))
        out.append(f'<path d="{path_d}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        out.append(f'<text x="{w - m - 200}" y="{m + 16 * i}" fill="{c}">{name}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    sys.exit(main())
