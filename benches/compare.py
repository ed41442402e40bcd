#!/usr/bin/env python3
"""Side-by-side benchmark of salve, Ansible (ansible-core + pywinrm) and a plain pywinrm thread
pool against the lab (`salve lab serve`), on loopback.

    python3 benches/compare.py [--sizes 50,200,1000] [--runs 3] [--quick] [--full]

For each fleet size N it starts a healthy simulated fleet of N hosts (pinned to core 1 when
`taskset` exists; the orchestrators run on core 0), then runs each scenario with each tool and
each auth mode (NTLM with message encryption over HTTP; Basic over HTTPS with the lab CA):

  a  three short PowerShell tasks per host (`Write-Output`)
  b  one task silent for 30 simulated seconds, longer than the 1 s WS-Man OperationTimeout
  c  playbooks/assess.yml (salve only; skipped when the playbook is absent)

and records wall time (median of --runs), CPU time (user+sys of the tool's process tree, from
wait4), peak memory (largest single process from wait4, and the whole tree's summed RSS sampled
from /proc every 0.2 s), and per host, from the lab's `GET /log`: authentications (one per
NTLM handshake or Basic connection), shells created, commands started, OperationTimeout polls.
See benches/README.md for the floor formula and how to read the results.

Only the Python standard library is used (the plot is SVG written by hand), so the harness
runs on a fresh machine; the tools under test live in .venv (tests/peers/install.sh installs
pywinrm; this script adds ansible-core 2.19 when an Ansible tool is asked for).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benches"
VENV = ROOT / ".venv"
ANSIBLE_SPEC = "ansible-core>=2.19,<2.20"
SILENT_SIM_SECONDS = 30
SCRIPTS_A = ["Write-Output one", "Write-Output two", "Write-Output three"]
SCRIPT_B = f"Start-Sleep -Seconds {SILENT_SIM_SECONDS}\nWrite-Output done"
AUTHS = {
    "ntlm-http": {"transport": "ntlm", "scheme": "http", "port": 5985},
    "basic-https": {"transport": "basic", "scheme": "https", "port": 5986},
}
NO_PROXY = "127.0.0.0/8,localhost"
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and os.cpu_count() > 1 else []


# ---------------------------------------------------------------------------------------------
# setup


def build_salve(profile: str) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if profile == "release":
        log("cargo build --release")
        subprocess.run(["cargo", "build", "--release", "--bin", "salve"], cwd=ROOT, check=True)
    # The target directory may be shared with other checkouts: keep a private copy of the binary.
    private = Path(tempfile.mkdtemp(prefix="salve-bin-")) / "salve"
    shutil.copy2(target / profile / "salve", private)
    return private


def ensure_venv(want_ansible: bool) -> None:
    subprocess.run(["sh", str(ROOT / "tests/peers/install.sh")], check=True)
    if want_ansible and not (VENV / "bin/ansible-playbook").exists():
        log(f"installing {ANSIBLE_SPEC} into .venv")
        subprocess.run([str(VENV / "bin/pip"), "install", "--quiet",
                        "--disable-pip-version-check", ANSIBLE_SPEC], check=True)


def capture(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def versions(salve: Path) -> dict:
    py = str(VENV / "bin/python")
    sha = capture(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if capture(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]):
        sha += "+dirty"
    meta = "import importlib.metadata as m, sys\nfor p in sys.argv[1:]:\n  try: print(m.version(p))\n  except Exception: print('-')"
    pkgs = capture([py, "-c", meta, "pywinrm", "ansible-core"]).splitlines() + ["-", "-"]
    return {
        "salve": f"{capture([str(salve), '--version'])} ({sha})",
        "pywinrm": pkgs[0],
        "ansible-core": pkgs[1],
        "python": capture([py, "-c", "import platform; print(platform.python_version())"]),
    }


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    except (OSError, AttributeError):
        mem_kb = 0
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "load_at_start": os.getloadavg()[0]}


# ---------------------------------------------------------------------------------------------
# the lab


def clock_ticks(pid: int, children: bool) -> int:
    """utime + stime (and the reaped children's, when asked) of a process, in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    ticks = int(fields[11]) + int(fields[12])
    return ticks + (int(fields[13]) + int(fields[14]) if children else 0)


def stop_process(proc: subprocess.Popen) -> None:
    """Ctrl-C (a lab's clean shutdown), then SIGKILL if it has not exited within 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


class Lab:
    """A `salve lab serve` child process with a healthy fleet of n hosts."""

    def __init__(self, salve: Path, n: int, work: Path, time_scale: float, admin_port: int,
                 mix: bool = False, https: bool = True, block: int = 0):
        """mix: the lab's default fleet for n hosts (`salve lab serve --hosts n`: tenants, a
        DAG, vulnerable and patched builds, a compromised, a failing and an unreachable host)
        instead of n healthy hosts in one tenant. https: also listen on 5986 (a second
        listener per host, which a 10,000-host fleet cannot afford under a 20,000-file limit)."""
        self.n, self.work, self.admin = n, work, f"127.0.0.1:{admin_port}"
        self.scenario = work / "scenario.yml"
        self.scenario.write_text(
            f"seed: 1\ntime_scale: {time_scale}\n"
            f"durations: {{cu_minutes: 60, su_minutes: 30, reboot_minutes: 8}}\n"
            f"tenants:\n  - name: bench\n    hosts: {n}\n    builds: [15.2.792.3]\n")
        fleet = (["--hosts", str(n), "--time-scale", str(time_scale)] if mix
                 else ["--scenario", str(self.scenario)])
        self.inventory_out, self.ca = work / "lab-inventory.yml", work / "lab-ca.pem"
        self.stderr = open(work / "lab.stderr", "w")
        self.proc = subprocess.Popen(
            pin(1) + [str(salve), "lab", "serve"] + fleet
            + (["--block", str(block)] if block else []) + [
                      "--inventory-out", str(self.inventory_out), "--admin", self.admin]
            + (["--ca-out", str(self.ca)] if https else []),
            stdout=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True)
        self.seq = 0
        self._wait_ready()
        self.hosts = self._parse_inventory()

    def _wait_ready(self, limit_s: float = 180) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lab exited: {(self.work / 'lab.stderr').read_text()}")
            if "lab running" in (self.work / "lab.stderr").read_text():
                return
            time.sleep(0.1)
        raise RuntimeError(f"lab not ready after {limit_s} s")

    def _parse_inventory(self) -> list[dict]:
        # The lab writes its inventory in a fixed layout (crates/salve-lab/src/inventory.rs).
        text = self.inventory_out.read_text()
        user = json.loads(re.search(r"ansible_user: (\".*\")", text).group(1))
        password = json.loads(re.search(r"ansible_password: (\".*\")", text).group(1))
        hosts = [{"name": m[0], "host": m[1], "user": user, "password": password}
                 for m in re.findall(r"\n {8}(\S+):\n {10}ansible_host: (\S+)\n", text)]
        if len(hosts) != self.n:
            raise RuntimeError(f"lab inventory has {len(hosts)} hosts, expected {self.n}")
        return hosts

    def fetch(self, target: str) -> str:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{self.admin}{target}", timeout=120) as r:
            return r.read().decode()

    def new_events(self) -> list[dict]:
        """Protocol events logged since the previous call."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"the lab exited with status {self.proc.returncode} during the "
                               f"run; its stderr: {(self.work / 'lab.stderr').read_text()}")
        entries = json.loads(self.fetch("/log"))
        fresh = [e for e in entries if e["seq"] > self.seq]
        self.seq = max([self.seq] + [e["seq"] for e in entries])
        return [e for e in fresh if e["event"].get("kind") == "protocol"]

    def cpu_seconds(self) -> float:
        return clock_ticks(self.proc.pid, False) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        stop_process(self.proc)
        self.stderr.close()


def per_host(events: list[dict], hosts: list[str]) -> dict:
    """Mean and max per host of the protocol events that tell connection reuse."""
    kinds = {"logons": "authenticated", "shells": "shell_created", "commands": "command_started"}
    counts = {k: dict.fromkeys(hosts, 0) for k in list(kinds) + ["timeouts", "events"]}
    for e in events:
        ev, h = e["event"]["event"], e["host"]
        if h not in counts["events"]:
            continue
        counts["events"][h] += 1
        for k, kind in kinds.items():
            counts[k][h] += ev.get("kind") == kind
        counts["timeouts"][h] += ev.get("kind") == "fault" and ev.get("code") == "2150858793"
    out = {}
    for k, c in counts.items():
        vals = list(c.values()) or [0]
        out[k] = round(statistics.mean(vals), 2)
        out[k + "_max"] = max(vals)
    return out


# ---------------------------------------------------------------------------------------------
# measuring one command


def tree_rss_kb(root: int) -> int:
    """Summed RSS of `root` and its descendants, from /proc."""
    parent, rss = {}, {}
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
            rss[int(d)] = int(Path(f"/proc/{d}/statm").read_text().split()[1]) * page_kb
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    children: dict[int, list[int]] = {}
    for p, pp in parent.items():
        children.setdefault(pp, []).append(p)
    while frontier:
        nxt = [c for p in frontier for c in children.get(p, []) if c not in tree]
        tree.update(nxt)
        frontier = nxt
    return sum(rss.get(p, 0) for p in tree)


def measure(cmd: list[str], env: dict, timeout_s: float, out: Path) -> dict:
    """Run cmd; wall, CPU (user+sys of the tree), peak RSS (GNU time; none without it); kill the tree after timeout_s."""
    # GNU time reports the largest RSS of the tool and its descendants; wait4's own ru_maxrss
    # would include this harness's RSS, which Linux carries over through fork and exec.
    rss_file = out.with_suffix(".maxrss")
    if GNU_TIME:
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss_file)] + cmd
    with open(out.with_suffix(".stdout"), "w") as so, open(out.with_suffix(".stderr"), "w") as se:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=so, stderr=se, start_new_session=True)
        done: dict = {}

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            done.update(end=time.monotonic(), status=status, usage=usage)

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        peak_tree, timed_out = 0, False
        while waiter.is_alive():
            if time.monotonic() - start > timeout_s:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                break
            peak_tree = max(peak_tree, tree_rss_kb(proc.pid))
            waiter.join(0.2)
        waiter.join(30)
        proc.returncode = os.waitstatus_to_exitcode(done["status"]) if "status" in done else -9
    u = done.get("usage")
    max_rss_kb = None
    try:
        max_rss_kb = int(rss_file.read_text().split()[-1]) if GNU_TIME else None
    except (OSError, ValueError, IndexError):
        pass
    return {
        "wall_s": round(done.get("end", time.monotonic()) - start, 3),
        "cpu_s": round(u.ru_utime + u.ru_stime, 3) if u else None,
        "max_rss_mb": round(max_rss_kb / 1024, 1) if max_rss_kb else None,
        "tree_rss_mb": round(peak_tree / 1024, 1),
        "exit": proc.returncode,
        "timed_out": timed_out,
    }


# ---------------------------------------------------------------------------------------------
# tools


def write_inventories(lab: Lab, work: Path, op_timeout: int, read_timeout: int) -> dict:
    """One Ansible-format inventory per auth mode (read by salve and Ansible alike), and the
    pywinrm pool's JSON host list."""
    paths = {}
    for auth, a in AUTHS.items():
        lines = ["all:", "  vars:", "    ansible_connection: winrm",
                 f"    ansible_winrm_transport: {a['transport']}",
                 f"    ansible_winrm_scheme: {a['scheme']}", f"    ansible_port: {a['port']}",
                 f"    ansible_user: {json.dumps(lab.hosts[0]['user'])}",
                 f"    ansible_password: {json.dumps(lab.hosts[0]['password'])}",
                 f"    ansible_winrm_operation_timeout_sec: {op_timeout}",
                 f"    ansible_winrm_read_timeout_sec: {read_timeout}"]
        if a["scheme"] == "https":
            lines += ["    ansible_winrm_server_cert_validation: validate",
                      f"    ansible_winrm_ca_trust_path: {json.dumps(str(lab.ca))}"]
        lines.append("  hosts:")
        lines += [f"    {h['name']}: {{ansible_host: {h['host']}}}" for h in lab.hosts]
        inv = work / f"inventory-{auth}.yml"
        inv.write_text("\n".join(lines) + "\n")
        pool = work / f"hosts-{auth}.json"
        pool.write_text(json.dumps([dict(h, port=a["port"], scheme=a["scheme"],
                                         transport=a["transport"], ca=str(lab.ca))
                                    for h in lab.hosts]))
        paths[auth] = {"inventory": inv, "pool": pool}
    return paths


def tool_command(tool: str, forks: int, scenario: str, salve: Path, files: dict,
                 assess: Path | None, op_timeout: int, read_timeout: int,
                 limit: str | None = None) -> list[str] | None:
    if tool == "salve":
        playbook = {"a": BENCH / "playbooks/short3.yml", "b": BENCH / "playbooks/silent.yml",
                    "c": assess}[scenario]
        cmd = [str(salve), "run", "--json", "--no-progress", "--forks", str(forks),
               str(playbook), "-i", str(files["inventory"])]
        return cmd + (["--limit", limit] if limit else [])
    if scenario == "c":
        return None  # the lab simulates only salve's shipped assess scripts
    if tool == "pywinrm":
        scripts = SCRIPTS_A if scenario == "a" else [SCRIPT_B]
        cmd = [str(VENV / "bin/python"), str(BENCH / "pywinrm_pool.py"), str(files["pool"]),
               "--workers", str(forks), "--op-timeout", str(op_timeout),
               "--read-timeout", str(read_timeout)]
        for s in scripts:
            cmd += ["--script", s]
        return cmd
    playbook = BENCH / "ansible" / ("short3.yml" if scenario == "a" else "silent.yml")
    return [str(VENV / "bin/ansible-playbook"), "-i", str(files["inventory"]), "-f", str(forks),
            str(playbook)]


def tool_env(work: Path) -> dict:
    env = dict(os.environ, NO_PROXY=NO_PROXY, no_proxy=NO_PROXY, LC_ALL="C.UTF-8",
               ANSIBLE_CONFIG=str(BENCH / "ansible/ansible.cfg"),
               ANSIBLE_HOME=str(work / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
    return env


def floor_s(scenario: str, n: int, forks: int, time_scale: float) -> float | None:
    """Simulated work along the critical path: ceil(N / concurrency) waves of the per-host
    simulated duration. Scenario a has no simulated work (0); c is not modelled."""
    if scenario == "a":
        return 0.0
    if scenario == "b":
        return math.ceil(n / max(1, forks)) * SILENT_SIM_SECONDS / time_scale
    return None


# ---------------------------------------------------------------------------------------------
# the run


def run_size(n: int, a: argparse.Namespace, salve: Path, root_work: Path,
             records: list[dict]) -> None:
    work = root_work / f"n{n}"
    work.mkdir(parents=True, exist_ok=True)
    assess = ROOT / "playbooks/assess.yml"
    scenarios = [s for s in a.scenarios if s != "c" or assess.exists()]
    if "c" in a.scenarios and not assess.exists():
        log("scenario c skipped: playbooks/assess.yml is not in this checkout")
    env = tool_env(work)
    for scenario in scenarios:
        for auth in a.auths:
            # A fresh lab per (scenario, auth) keeps its cumulative log small.
            log(f"N={n} scenario {scenario} {auth}: starting the lab")
            t0 = time.monotonic()
            lab = Lab(salve, n, work, a.time_scale, a.admin_port, block=a.block)
            log(f"lab ready in {time.monotonic() - t0:.1f} s")
            try:
                files = write_inventories(lab, work, a.op_timeout, a.read_timeout)[auth]
                names = [h["name"] for h in lab.hosts]
                plan = []
                for tool in a.tools:
                    if tool == "ansible-fN" and n > a.ansible_max_forks:
                        log(f"ansible-fN skipped at N={n}: more than --ansible-max-forks")
                        continue
                    forks = n if tool.endswith("fN") else a.forks
                    plan.append((tool, forks))
                if scenario == "a" and "salve" in a.tools:
                    plan.insert(0, ("salve-1host", 1))
                lab.new_events()
                for tool, forks in plan:
                    base = tool.split("-")[0]
                    cmd = tool_command(base, forks, scenario, salve, files, assess,
                                       a.op_timeout, a.read_timeout,
                                       limit=names[0] if tool == "salve-1host" else None)
                    if cmd is None:
                        continue
                    runs = a.ansible_runs if base == "ansible" else a.runs
                    runs = 1 if tool == "salve-1host" else runs
                    for r in range(runs):
                        cpu0 = lab.cpu_seconds()
                        res = measure(pin(0) + cmd, env, a.tool_timeout,
                                      work / f"{scenario}-{auth}-{tool}-{r}")
                        res["lab_cpu_s"] = round(lab.cpu_seconds() - cpu0, 2)
                        hosts = names[:1] if tool == "salve-1host" else names
                        res.update(per_host(lab.new_events(), hosts))
                        rec = dict(size=n, scenario=scenario, auth=auth, tool=tool, forks=forks,
                                   run=r, cmd=" ".join(cmd),
                                   floor_s=floor_s(scenario, len(hosts), forks, a.time_scale),
                                   **res)
                        records.append(rec)
                        log(f"  {tool:12} f={forks:<5} run {r}: {res['wall_s']:8.2f} s wall "
                            f"{res['cpu_s']} s cpu {res['tree_rss_mb']} MB exit {res['exit']}"
                            f" logons/host {res['logons']} shells/host {res['shells']}")
                        if res["timed_out"]:
                            break  # a run that did not finish will not finish the next time
                (root_work / "raw.json").write_text(json.dumps(records, indent=1))
            finally:
                lab.stop()


# ---------------------------------------------------------------------------------------------
# reporting


def summarize(records: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["scenario"], r["size"], r["auth"], r["tool"], r["forks"]), []).append(r)
    rows = []
    for (scenario, size, auth, tool, forks), rs in groups.items():
        ok = [r for r in rs if not r["timed_out"]]
        def med(k: str):
            vals = [r[k] for r in ok if r[k] is not None]
            return statistics.median(vals) if vals else None
        last = rs[-1]
        rows.append(dict(scenario=scenario, size=size, auth=auth, tool=tool, forks=forks,
                         runs=len(rs), wall_s=med("wall_s"), cpu_s=med("cpu_s"),
                         tree_rss_mb=med("tree_rss_mb"), max_rss_mb=med("max_rss_mb"),
                         lab_cpu_s=med("lab_cpu_s"), floor_s=last["floor_s"],
                         failed=any(r["exit"] != 0 for r in rs), timed_out=not ok,
                         timeout_s=last["wall_s"] if not ok else None,
                         **{k: last[k] for k in ("logons", "logons_max", "shells", "shells_max",
                                                 "commands", "timeouts", "events")}))
    for row in rows:
        base = next((x for x in rows if x["tool"] == "salve" and x["scenario"] == row["scenario"]
                     and x["size"] == row["size"] and x["auth"] == row["auth"]), None)
        row["ratio"] = (round(row["wall_s"] / base["wall_s"], 1)
                        if base and base["wall_s"] and row["wall_s"] else None)
    order = {"salve-1host": 0, "salve": 1, "salve-fN": 2, "pywinrm": 3, "ansible-f50": 4,
             "ansible-fN": 5}
    rows.sort(key=lambda x: (x["scenario"], x["size"], x["auth"], order.get(x["tool"], 9)))
    return rows


def fmt(v, suffix="") -> str:
    return "—" if v is None else f"{v:g}{suffix}" if isinstance(v, (int, float)) else str(v)


def markdown(rows: list[dict], meta: dict) -> str:
    m, v = meta["machine"], meta["versions"]
    out = [
        "# salve benchmark results", "",
        f"- date: {meta['date']}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']};"
        f" load average {m['load_at_start']:.2f} at start (the box is shared)",
        f"- command: `{meta['command']}`",
        f"- versions: salve {v['salve']}; ansible-core {v['ansible-core']}; pywinrm "
        f"{v['pywinrm']}; Python {v['python']}",
        f"- lab: `salve lab serve` pinned to core 1, tools pinned to core 0; time scale "
        f"{meta['time_scale']}; OperationTimeout {meta['op_timeout']} s; loopback only",
        "",
        "Scenarios: **a** = 3 × `Write-Output` per host; **b** = one `Start-Sleep -Seconds 30` "
        f"per host ({SILENT_SIM_SECONDS / meta['time_scale']:g} s real, silent through the "
        "OperationTimeout); **c** = playbooks/assess.yml. Wall, CPU and memory are medians "
        "over the runs. CPU = user+sys of the tool's whole process tree; tree RSS = peak of "
        "the summed RSS of the tree (sampled every 0.2 s); max RSS = largest single process. "
        "logons/host counts NTLM handshakes or Basic connections at the lab; shells/host and "
        "cmds/host count WS-Man Creates and Commands; polls/host counts OperationTimeout "
        "faults. floor = ceil(N / concurrency) × simulated duration (a: 0). ratio = wall ÷ "
        "salve's wall in the same row group.",
        "",
        "| scenario | N | auth | tool | forks | runs | wall s | floor s | CPU s | tree RSS MB | "
        "max RSS MB | lab CPU s | logons/host | shells/host | cmds/host | polls/host | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        wall = (f"did not finish in {r['timeout_s']:g} s" if r["timed_out"]
                else fmt(r["wall_s"]) + (" (failed)" if r["failed"] else ""))
        out.append(
            f"| {r['scenario']} | {r['size']} | {r['auth']} | {r['tool']} | {r['forks']} | "
            f"{r['runs']} | {wall} | {fmt(r['floor_s'])} | {fmt(r['cpu_s'])} | "
            f"{fmt(r['tree_rss_mb'])} | {fmt(r['max_rss_mb'])} | {fmt(r['lab_cpu_s'])} | "
            f"{fmt(r['logons'])} (max {r['logons_max']}) | {fmt(r['shells'])} (max {r['shells_max']}) | "
            f"{fmt(r['commands'])} | {fmt(r['timeouts'])} | {fmt(r['ratio'], '×')} |")
    out += ["", "## Targets", "", *targets(rows), "", *meta.get("notes", [])]
    return "\n".join(out) + "\n"


def targets(rows: list[dict]) -> list[str]:
    """The project's benchmark targets, checked against the rows measured."""
    def find(scenario, tool, size=None, auth=None):
        return [r for r in rows if r["scenario"] == scenario and r["tool"] == tool
                and (size is None or r["size"] == size) and (auth is None or r["auth"] == auth)]

    lines = []
    for auth in AUTHS:
        for peer, goal in (("ansible-f50", 10.0), ("pywinrm", 1.0)):
            for r in find("a", peer, 200, auth):
                verdict = ("met" if r["ratio"] and r["ratio"] >= goal else "missed") \
                    if not r["timed_out"] else "met (peer did not finish)"
                lines.append(f"- 200 hosts × 3 tasks, {auth}: {peer} takes {fmt(r['ratio'], '×')}"
                             f" salve's wall time (target ≥ {goal:g}×): {verdict}")
    big = max((r["size"] for r in rows if r["tool"] == "salve"), default=None)
    for r in find("b", "salve", big) + find("b", "salve-fN", big):
        if r["floor_s"] and r["wall_s"]:
            over = (r["wall_s"] - r["floor_s"]) / r["floor_s"] * 100
            lines.append(f"- overhead above the floor, {big} hosts, silent task, forks "
                         f"{r['forks']}, {r['auth']}: "
                         f"{over:.1f}% ({r['wall_s']:g} s vs {r['floor_s']:g} s; target < 10% "
                         f"at 1,000 hosts)")
    for r in [r for r in rows if r["tool"].startswith("salve") and r["size"] == big]:
        lines.append(f"- salve peak RSS, {big} hosts, {r['forks']} at once, scenario "
                     f"{r['scenario']}, {r['auth']}: {fmt(r['max_rss_mb'])} MB (target < 200 MB "
                     f"at 1,000 concurrent hosts)")
    salve_rows = [r for r in rows if r["tool"].startswith("salve")]
    worst_logons = max((r["logons_max"] for r in salve_rows), default=0)
    worst_shells = max((r["shells_max"] for r in salve_rows), default=0)
    lines.append(f"- salve, busiest host of any run: {worst_logons} logon(s), {worst_shells} "
                 f"shell(s) (target ≤ 1 NTLM handshake and 1 shell per host per run)")
    return lines


def svg_plot(rows: list[dict], path: Path) -> None:
    """Wall time vs fleet size per tool (scenario a, NTLM over HTTP), log-scale y, by hand."""
    pick = [r for r in rows if r["scenario"] == "a" and r["auth"] == "ntlm-http"
            and r["wall_s"] and r["tool"] != "salve-1host"]
    if not pick:
        return
    tools = sorted({r["tool"] for r in pick}, key=lambda t: ["salve", "pywinrm", "ansible-f50",
                                                            "ansible-fN"].index(t) if t in
                   ["salve", "pywinrm", "ansible-f50", "ansible-fN"] else 9)
    sizes = sorted({r["size"] for r in pick})
    w, h, ml, mr, mt, mb = 640, 400, 70, 150, 40, 50
    lo = math.floor(math.log10(min(r["wall_s"] for r in pick)))
    hi = math.ceil(math.log10(max(r["wall_s"] for r in pick)))
    hi = max(hi, lo + 1)
    x = lambda s: ml + (w - ml - mr) * (sizes.index(s) / max(1, len(sizes) - 1))  # noqa: E731
    y = lambda v: mt + (h - mt - mb) * (1 - (math.log10(v) - lo) / (hi - lo))  # noqa: E731
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"]
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
          f'font-family="sans-serif" font-size="12">',
          f'<rect width="{w}" height="{h}" fill="white"/>',
          f'<text x="{ml}" y="20" font-size="14">Wall time vs fleet size: 3 short tasks per '
          f'host, NTLM over HTTP (log scale)</text>']
    for e in range(lo, hi + 1):
        yy = y(10 ** e)
        el += [f'<line x1="{ml}" y1="{yy:.1f}" x2="{w - mr}" y2="{yy:.1f}" stroke="#ddd"/>',
               f'<text x="{ml - 8}" y="{yy + 4:.1f}" text-anchor="end">{10 ** e:g} s</text>']
    for s in sizes:
        el += [f'<text x="{x(s):.1f}" y="{h - mb + 18}" text-anchor="middle">{s}</text>']
    el += [f'<text x="{(ml + w - mr) / 2}" y="{h - 12}" text-anchor="middle">hosts</text>']
    for i, t in enumerate(tools):
        pts = sorted((r["size"], r["wall_s"]) for r in pick if r["tool"] == t)
        c = colors[i % len(colors)]
        el.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="'
                  + " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in pts) + '"/>')
        el += [f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{c}"/>' for s, v in pts]
        el += [f'<line x1="{w - mr + 15}" y1="{mt + 20 * i}" x2="{w - mr + 35}" '
               f'y2="{mt + 20 * i}" stroke="{c}" stroke-width="2"/>',
               f'<text x="{w - mr + 40}" y="{mt + 20 * i + 4}">{t}</text>']
    el.append("</svg>")
    path.write_text("\n".join(el) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description="salve vs Ansible vs pywinrm on the lab")
    p.add_argument("--sizes", default="50,200,1000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--ansible-runs", type=int, help="runs per Ansible measurement (default --runs)")
    p.add_argument("--quick", action="store_true", help="N=20, one run, salve and pywinrm only")
    p.add_argument("--full", action="store_true",
                   help="also run playbooks/proxylogon.yml on 1,000 hosts (salve only)")
    p.add_argument("--tools", default="salve,pywinrm,ansible-f50,ansible-fN",
                   help="salve (forks --forks), salve-fN (forks = N), pywinrm, ansible-f50, "
                        "ansible-fN")
    p.add_argument("--auths", default="ntlm-http,basic-https")
    p.add_argument("--scenarios", default="a,b,c")
    p.add_argument("--forks", type=int, default=50, help="salve's and pywinrm's concurrency")
    p.add_argument("--ansible-max-forks", type=int, default=200,
                   help="skip ansible-fN above this N (one Python process per fork)")
    p.add_argument("--time-scale", type=float, default=10.0)
    p.add_argument("--op-timeout", type=int, default=1)
    p.add_argument("--read-timeout", type=int, default=5)
    p.add_argument("--tool-timeout", type=float, default=900, help="seconds per tool run")
    p.add_argument("--salve", type=Path, help="use this salve binary; do not build")
    p.add_argument("--admin-port", type=int, default=18950)
    p.add_argument("--block", type=int, default=0,
                   help="serve the lab on 127.B.x.y (`salve lab serve --block`), so benchmarks "
                        "can run side by side; 0: the lab's default 127.0.x.y")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    p.add_argument("--append", action="store_true",
                   help="add to the measurements already in OUT/raw.json instead of replacing them")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite RESULTS.md and the plot from OUT/raw.json; run nothing")
    a = p.parse_args()
    if a.report_only:
        saved = json.loads((a.out / "raw.json").read_text())
        write_results(a.out, saved["records"], saved["meta"])
        return 0
    if a.quick:
        a.sizes, a.runs, a.tools = "20", 1, "salve,pywinrm"
    a.sizes = [int(s) for s in a.sizes.split(",")]
    a.tools, a.auths, a.scenarios = (a.tools.split(","), a.auths.split(","),
                                     a.scenarios.split(","))
    a.ansible_runs = a.ansible_runs or a.runs
    if a.full:
        a.scenarios.append("full")
    salve = a.salve or build_salve("release")
    ensure_venv(any(t.startswith("ansible") for t in a.tools))
    work = a.work or Path(tempfile.mkdtemp(prefix="salve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"scratch directory {work}")
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "versions": versions(salve),
            "command": "python3 benches/compare.py " + " ".join(sys.argv[1:]),
            "time_scale": a.time_scale, "op_timeout": a.op_timeout, "notes": []}
    records: list[dict] = []
    previous = a.out / "raw.json"
    if a.append and previous.exists():
        old = json.loads(previous.read_text())
        records = old["records"]
        meta["command"] = f"{old['meta']['command']}` then `{meta['command']}"
        meta["notes"] = old["meta"].get("notes", [])
    for n in a.sizes:
        run_size(n, a, salve, work, records)
    if "c" in a.scenarios and not (ROOT / "playbooks/assess.yml").exists():
        meta["notes"].append("Scenario c skipped: playbooks/assess.yml is not in this checkout.")
    if a.full:
        meta["notes"].append(run_full(a, salve, work, records))
    meta["notes"] = list(dict.fromkeys(meta["notes"]))
    rows = write_results(a.out, records, meta)
    return 1 if any(r["failed"] or r["timed_out"] for r in rows if r["tool"].startswith("salve")) else 0


def write_results(out: Path, records: list[dict], meta: dict) -> list[dict]:
    """RESULTS.md, raw.json and wall-time.svg in `out`; prints the Markdown."""
    rows = summarize(records)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, meta)
    # Sections other harnesses keep in RESULTS.md (between `<!-- section:NAME -->` and
    # `<!-- /section:NAME -->`, e.g. benches/scaleout.py's) survive the rewrite.
    old = (out / "RESULTS.md").read_text() if (out / "RESULTS.md").exists() else ""
    kept = [m.group(0) for m in
            re.finditer(r"(?ms)^<!-- section:(\S+) -->$.*?^<!-- /section:\1 -->$\n?", old)]
    if kept:
        text = text.rstrip("\n") + "\n\n" + "\n".join(kept)
    (out / "RESULTS.md").write_text(text)
    (out / "raw.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    svg_plot(rows, out / "wall-time.svg")
    print(text)
    return rows


def run_full(a: argparse.Namespace, salve: Path, work: Path, records: list[dict]) -> str:
    """--full: playbooks/proxylogon.yml on 1,000 lab hosts with time-scaled installs/reboots."""
    playbook = ROOT / "playbooks/proxylogon.yml"
    if not playbook.exists():
        log("--full: playbooks/proxylogon.yml is not in this checkout; nothing to run")
        return "Full-scale run (--full) not run: playbooks/proxylogon.yml is not in this checkout."
    n, full_work = 1000, work / "full"
    full_work.mkdir(parents=True, exist_ok=True)
    lab = Lab(salve, n, full_work, a.time_scale * 60, a.admin_port)
    try:
        files = write_inventories(lab, full_work, 20, 30)["ntlm-http"]
        cmd = [str(salve), "run", "--json", "--no-progress", "--forks", str(n), "--all-tenants",
               str(playbook), "-i", str(files["inventory"])]
        lab.new_events()
        res = measure(pin(0) + cmd, tool_env(full_work), a.tool_timeout * 4, full_work / "full")
        res.update(per_host(lab.new_events(), [h["name"] for h in lab.hosts]))
        # Floor: one CU (60 min) + one SU (30 min) + one reboot (8 min) per host, all hosts at
        # once (forks = N, no DAGs in the bench fleet), at the lab's time scale.
        floor = (60 + 30 + 8) * 60 / (a.time_scale * 60)
        records.append(dict(size=n, scenario="full", auth="ntlm-http", tool="salve", forks=n,
                            run=0, cmd=" ".join(cmd), floor_s=floor, **res))
        return (f"Full-scale run: proxylogon.yml on {n} hosts took {res['wall_s']} s against "
                f"a floor of {floor:g} s; salve's peak RSS {res['max_rss_mb']} MB.")
    finally:
        lab.stop()


if __name__ == "__main__":
    sys.exit(main())
