#!/usr/bin/env python3
"""Scale-out benchmark: the same playbook on the same lab fleet, run (a) by one `salve run`
process and (b) through the PostgreSQL queue by `salve run --queue` and R `salve runner`
processes, with the same total concurrency.

    python3 benches/scaleout.py               # 2,000 hosts, 20 tenants, 4 runners, 200 at once
    python3 benches/scaleout.py --smoke       # 40 hosts, 4 tenants, 2 runners; checks only
    python3 benches/scaleout.py --salve NEW --baseline OLD   # both builds, side by side

The lab serves its fleet on its own loopback block (127.60.x.y, `--block`), pinned to core 1;
salve, the runners and PostgreSQL run on core 0. PostgreSQL is a throwaway cluster
(tests/peers/postgres.sh, fsync off) created fresh for each queued run. Per run it records wall
time, CPU and peak RSS of every salve process (GNU time), the database's CPU (postmaster and
children, from /proc) and its pg_stat_database deltas, and per host, from the lab's log, the
WinRM commands and shells. It checks that every host's tasks ran exactly as often in the
queued run as in the single-process run, that every work item is `done` on its first claim,
and that every exit code is 0; any failed check makes the exit code 1. With `--baseline`, the
same two runs follow with the baseline build, and RESULTS.md gets a side-by-side table.

Each runner serves several tenants (`salve runner --tenant A --tenant B ...`).

Only the Python standard library is used. See benches/README.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (  # noqa: E402
    BENCH, GNU_TIME, ROOT, build_salve, capture, clock_ticks, log, machine, pin, stop_process,
)

PLAYBOOK = BENCH / "playbooks/short3.yml"
TASKS = 3  # tasks per host in PLAYBOOK
POSTGRES_SH = ROOT / "tests/peers/postgres.sh"
SECTION = "queue-bench"
NO_PROXY = "127.0.0.0/8,localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_s(root: int) -> float:
    """CPU of `root` (with its reaped children) and of its live children."""
    total = clock_ticks(root, True)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == root:
                total += clock_ticks(int(d), False)
    return total / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# the lab and the database


class Lab:
    """`salve lab serve --block B` with `tenants` tenants of `hosts / tenants` hosts each."""

    def __init__(self, salve: Path, hosts: int, tenants: int, block: int, work: Path):
        if hosts % tenants:
            raise SystemExit(f"--hosts {hosts} is not a multiple of --tenants {tenants}")
        self.work, self.admin = work, f"127.0.0.1:{free_port()}"
        self.tenants = [f"t{i + 1:02d}" for i in range(tenants)]
        scenario = work / "scenario.yml"
        scenario.write_text("seed: 1\ntime_scale: 60\ntenants:\n" + "".join(
            f"  - name: {t}\n    hosts: {hosts // tenants}\n    builds: [15.2.792.3]\n"
            for t in self.tenants))
        self.inventory = work / "inventory.yml"
        self.stderr_path = work / "lab.stderr"
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            pin(1) + [str(salve), "lab", "serve", "--block", str(block), "--scenario",
                      str(scenario), "--inventory-out", str(self.inventory), "--admin",
                      self.admin],
            stdout=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True)
        deadline = time.monotonic() + 120
        while "lab running" not in self.stderr_path.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the lab did not start: {self.stderr_path.read_text()}")
            time.sleep(0.1)
        self.hosts = re.findall(r"(?m)^ {8}(\S+):$", self.inventory.read_text())
        if len(self.hosts) != hosts:
            raise RuntimeError(f"lab inventory has {len(self.hosts)} hosts, expected {hosts}")

    def cpu_s(self) -> float:
        return clock_ticks(self.proc.pid, False) / os.sysconf("SC_CLK_TCK")

    def per_host(self) -> dict[str, dict[str, int]]:
        """Commands started and shells created per host, from the lab's log."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"the lab exited: {self.stderr_path.read_text()}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{self.admin}/log", timeout=300) as r:
            entries = json.loads(r.read())
        counts = {h: {"commands": 0, "shells": 0} for h in self.hosts}
        for e in entries:
            ev = e["event"]
            if ev.get("kind") != "protocol" or e["host"] not in counts:
                continue
            kind = ev["event"].get("kind")
            if kind == "command_started":
                counts[e["host"]]["commands"] += 1
            elif kind == "shell_created":
                counts[e["host"]]["shells"] += 1
        return counts

    def split_inventory(self, tenants: list[str], path: Path) -> Path:
        """The lab inventory restricted to `tenants` (a runner's own inventory)."""
        # The lab writes a fixed layout (crates/salve-lab/src/inventory.rs): shared vars, then one
        # 4-space-indented child group per tenant.
        head, _, rest = self.inventory.read_text().partition("  children:\n")
        blocks = [b for b in re.split(r"(?m)^(?= {4}\S)", rest) if b.strip()]
        keep = [b for b in blocks if b.split(":", 1)[0].strip() in tenants]
        path.write_text(head + "  children:\n" + "".join(keep))
        return path

    def stop(self) -> None:
        stop_process(self.proc)
        self.stderr.close()


class Postgres:
    """A throwaway cluster from tests/peers/postgres.sh, pinned to core 0."""

    def __init__(self):
        # Its own directory in the system's temp dir: under root the cluster runs as `postgres`,
        # which may not traverse the (private) scratch directory.
        self.dir, self.port = Path(tempfile.mkdtemp(prefix="salve-bench-pg-")), free_port()
        subprocess.run(pin(0) + ["sh", str(POSTGRES_SH), "start", str(self.dir),
                                 str(self.port)], check=True)
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))
        self.psql = bins[-1] if bins else "psql"

    def pid(self) -> int:
        return int((self.dir / "data/postmaster.pid").read_text().split()[0])

    def query(self, sql: str) -> list[list[str]]:
        out = subprocess.run([self.psql, self.url, "-XAtq", "-F", "\t", "-c", sql],
                             capture_output=True, text=True, check=True).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def stats(self) -> dict[str, int]:
        cols = ["xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted",
                "tup_updated", "tup_deleted", "blks_hit", "blks_read"]
        # A backend reports its counters when idle for a second or when it exits.
        time.sleep(1.5)
        row = self.query(f"SELECT {', '.join(cols)} FROM pg_stat_database "
                         "WHERE datname = 'postgres'")[0]
        return dict(zip(cols, map(int, row)))

    def stop(self) -> None:
        subprocess.run(["sh", str(POSTGRES_SH), "stop", str(self.dir)], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# salve processes


class Proc:
    """A salve process on core 0 under GNU time (wall, user, sys, max RSS)."""

    def __init__(self, name: str, args: list[str], salve: Path, env: dict, work: Path):
        self.name, self.work = name, work
        self.time_file = work / f"{name}.time"
        timed = [GNU_TIME, "-f", "%e %U %S %M", "-o", str(self.time_file)] if GNU_TIME else []
        self.stdout_path, self.stderr_path = work / f"{name}.stdout", work / f"{name}.stderr"
        with open(self.stdout_path, "w") as so, open(self.stderr_path, "w") as se:
            self.start = time.monotonic()
            self.proc = subprocess.Popen(pin(0) + timed + [str(salve)] + args, env=env,
                                         stdout=so, stderr=se, start_new_session=True)
        self.end: float | None = None
        self.code: int | None = None
        self.usage = None

    def poll(self) -> bool:
        if self.end is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.end, self.usage = time.monotonic(), usage
                self.code = os.waitstatus_to_exitcode(status)
        return self.end is not None

    def kill(self) -> None:
        if not self.poll():
            os.killpg(self.proc.pid, signal.SIGKILL)
            _, status, self.usage = os.wait4(self.proc.pid, 0)
            self.end, self.code = time.monotonic(), -9

    def result(self) -> dict:
        res = {"wall_s": round((self.end or time.monotonic()) - self.start, 3), "exit": self.code,
               "cpu_s": round(self.usage.ru_utime + self.usage.ru_stime, 3) if self.usage else None,
               "max_rss_mb": None}
        try:
            fields = self.time_file.read_text().splitlines()[-1].split()
            res["max_rss_mb"] = round(int(fields[3]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            pass
        return res


def wait_all(procs: list[Proc], timeout_s: float) -> bool:
    """Wait for every process; kill them all after timeout_s. True if none was killed."""
    deadline = time.monotonic() + timeout_s
    while not all(p.poll() for p in procs):
        if time.monotonic() > deadline:
            for p in procs:
                p.kill()
            return False
        time.sleep(0.05)
    return True


def events(proc: Proc) -> list[dict]:
    out = []
    for line in proc.stdout_path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def run_summary(evs: list[dict]) -> dict:
    finished = [e for e in evs if e.get("event") == "task_finished"]
    summary = next((e["summary"] for e in evs if e.get("event") == "run_finished"), None)
    outcomes: dict[str, int] = {}
    for h in (summary or {}).get("hosts", []):
        outcomes[h["outcome"]] = outcomes.get(h["outcome"], 0) + 1
    return {"task_finished": len(finished), "outcomes": outcomes,
            "exit_code_reported": (summary or {}).get("exit_code")}


# ---------------------------------------------------------------------------------------------
# the two runs


def single(a, salve: Path, work: Path, env: dict) -> dict:
    lab = Lab(salve, a.hosts, a.tenants, a.block, work)
    try:
        lab_cpu = lab.cpu_s()
        p = Proc("single", ["run", "--json", "--no-progress", "--all-tenants", "--forks",
                            str(a.concurrency), str(PLAYBOOK), "-i", str(lab.inventory)],
                 salve, env, work)
        finished = wait_all([p], a.timeout)
        res = {"mode": "single", "timed_out": not finished, "controller": p.result(),
               "lab_cpu_s": round(lab.cpu_s() - lab_cpu, 2), **run_summary(events(p))}
        res["per_host"] = lab.per_host()
        return res
    finally:
        lab.stop()


def queued(a, salve: Path, work: Path, env: dict) -> dict:
    lab = Lab(salve, a.hosts, a.tenants, a.block, work)
    pg = None
    procs: list[Proc] = []
    try:
        pg = Postgres()
        env = dict(env, SALVE_QUEUE_URL=pg.url)
        subprocess.run([str(salve), "queue", "init"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        groups = [lab.tenants[i::a.runners] for i in range(a.runners)]
        per_runner = max(1, a.concurrency // len(groups))
        db_before, db_cpu, lab_cpu = pg.stats(), tree_cpu_s(pg.pid()), lab.cpu_s()
        controller = Proc("controller", ["run", "--queue", pg.url, "--json", "--no-progress",
                                         "--all-tenants", str(PLAYBOOK), "-i",
                                         str(lab.inventory)], salve, env, work)
        procs.append(controller)
        deadline = time.monotonic() + a.timeout
        while "enqueued" not in controller.stderr_path.read_text():
            if controller.poll() or time.monotonic() > deadline:
                raise RuntimeError("the controller did not enqueue: "
                                   + controller.stderr_path.read_text())
            time.sleep(0.02)
        enqueued_s = time.monotonic() - controller.start
        for i, tenants in enumerate(groups):
            inv = lab.split_inventory(tenants, work / f"runner{i + 1}.yml")
            args = ["runner", "--concurrency", str(per_runner), "-i", str(inv), "--id",
                    f"r{i + 1}", "--lease", str(a.lease), "--poll", "1", "--exit-when-idle"]
            for t in tenants:
                args += ["--tenant", t]
            procs.append(Proc(f"runner{i + 1}", args, salve, env, work))
        finished = wait_all(procs, a.timeout)
        db_cpu = tree_cpu_s(pg.pid()) - db_cpu
        lab_cpu = lab.cpu_s() - lab_cpu
        db_after = pg.stats()
        rows = pg.query(
            "SELECT (SELECT count(*) FROM salve.work WHERE state = 'done'),"
            " (SELECT count(*) FROM salve.work WHERE fence <> 1),"
            " (SELECT count(*) FROM salve.host_steps WHERE state = 'done'),"
            " (SELECT count(*) FROM salve.intents WHERE completed_at IS NOT NULL),"
            " (SELECT count(DISTINCT owner) FROM salve.work),"
            " (SELECT extract(epoch FROM max(finished_at) - min(claimed_at)) FROM salve.work),"
            " (SELECT extract(epoch FROM avg(started_at - claimed_at)) FROM salve.work)")[0]
        runners = [p for p in procs if p is not controller]
        res = {"mode": "queued", "timed_out": not finished,
               "runners": len(runners), "concurrency_per_runner": per_runner,
               "enqueued_s": round(enqueued_s, 3), "controller": controller.result(),
               "runner_results": [p.result() for p in runners],
               "runner_stderr_warnings": sum(
                   len(re.findall(r"(?m)^\S+\s+(?:WARN|ERROR) ", p.stderr_path.read_text()))
                   for p in runners),
               "db_cpu_s": round(db_cpu, 2), "lab_cpu_s": round(lab_cpu, 2),
               "db_stats": {k: db_after[k] - db_before[k] for k in db_after},
               "work_done": int(rows[0]), "work_reclaimed": int(rows[1]),
               "steps_done": int(rows[2]), "intents_completed": int(rows[3]),
               "owners": int(rows[4]), "db_span_s": round(float(rows[5] or 0), 3),
               "claim_to_start_ms": round(float(rows[6] or 0) * 1000, 1),
               **run_summary(events(controller))}
        res["per_host"] = lab.per_host()
        return res
    finally:
        for p in procs:
            p.kill()
        if pg:
            pg.stop()
        lab.stop()


# ---------------------------------------------------------------------------------------------
# checks and report


def check(a, s: dict, q: dict) -> list[str]:
    problems = []
    steps = a.hosts * TASKS
    for r in (s, q):
        procs = [("controller", r["controller"])] + [
            (f"runner{i + 1}", x) for i, x in enumerate(r.get("runner_results", []))]
        for name, p in procs:
            if p["exit"] != 0:
                problems.append(f"{r['mode']}: {name} exited with {p['exit']}")
        if r["timed_out"]:
            problems.append(f"{r['mode']}: did not finish in {a.timeout} s")
        if r["outcomes"] != {"ok": a.hosts}:
            problems.append(f"{r['mode']}: host outcomes {r['outcomes']}, expected all ok")
        if r["task_finished"] != steps:
            problems.append(f"{r['mode']}: {r['task_finished']} task_finished events, "
                            f"expected {steps}")
    if q["work_done"] != a.hosts or q["work_reclaimed"] or q["steps_done"] != steps:
        problems.append(f"queued: {q['work_done']} items done, {q['work_reclaimed']} claimed "
                        f"more than once, {q['steps_done']} steps done (expected {a.hosts}, 0, "
                        f"{steps})")
    differ = [h for h in s["per_host"] if s["per_host"][h] != q["per_host"][h]]
    if differ:
        h = differ[0]
        problems.append(f"{len(differ)} host(s) saw different WinRM work in the two runs, e.g. "
                        f"{h}: single {s['per_host'][h]}, queued {q['per_host'][h]}")
    if any(c["commands"] != TASKS for c in q["per_host"].values()):
        problems.append("some host did not run exactly one command per task in the queued run")
    return problems


def figures(a, s: dict, q: dict) -> dict:
    steps = a.hosts * TASKS
    sw, qw = s["controller"]["wall_s"], q["controller"]["wall_s"]
    runner_cpu = sum(r["cpu_s"] or 0 for r in q["runner_results"])
    return {
        "steps": steps,
        "single_wall_s": sw, "queued_wall_s": qw, "wall_ratio": round(qw / sw, 2),
        "single_hosts_per_s": round(a.hosts / sw, 1), "queued_hosts_per_s": round(a.hosts / qw, 1),
        "single_steps_per_s": round(steps / sw, 1), "queued_steps_per_s": round(steps / qw, 1),
        "overhead_ms_per_step": round((qw - sw) / steps * 1000, 2),
        "db_steps_per_s": round(steps / q["db_span_s"], 1) if q["db_span_s"] else None,
        "db_transactions": q["db_stats"]["xact_commit"],
        "db_transactions_per_step": round(q["db_stats"]["xact_commit"] / steps, 2),
        "single_cpu_s": s["controller"]["cpu_s"],
        "queued_cpu_s": round(runner_cpu + (q["controller"]["cpu_s"] or 0) + q["db_cpu_s"], 2),
        "runners_cpu_s": round(runner_cpu, 2), "controller_cpu_s": q["controller"]["cpu_s"],
        "db_cpu_s": q["db_cpu_s"],
        "cpu_ms_per_step_single": round((s["controller"]["cpu_s"] or 0) / steps * 1000, 2),
        "cpu_ms_per_step_queued": round(
            (runner_cpu + (q["controller"]["cpu_s"] or 0) + q["db_cpu_s"]) / steps * 1000, 2),
        "single_max_rss_mb": s["controller"]["max_rss_mb"],
        "controller_max_rss_mb": q["controller"]["max_rss_mb"],
        "runner_max_rss_mb": max((r["max_rss_mb"] or 0) for r in q["runner_results"]),
        "lab_cpu_single_s": s["lab_cpu_s"], "lab_cpu_queued_s": q["lab_cpu_s"],
    }


def side_by_side(f: dict, b: dict, baseline: str) -> list[str]:
    """The headline figures of this build against the baseline build's."""
    rows = [
        ("single process, wall", "single_wall_s", " s"),
        ("queued, wall", "queued_wall_s", " s"),
        ("queued / single", "wall_ratio", "×"),
        ("transactions per step", "db_transactions_per_step", ""),
        ("database transactions", "db_transactions", ""),
        ("CPU: runners", "runners_cpu_s", " s"),
        ("CPU: controller", "controller_cpu_s", " s"),
        ("CPU: PostgreSQL", "db_cpu_s", " s"),
        ("CPU per step, queued", "cpu_ms_per_step_queued", " ms"),
    ]
    out = ["", f"Side by side with the baseline build ({baseline}), run right after on the same "
           "machine:", "", "| | this build | baseline | this / baseline |", "|---|---|---|---|"]
    for label, key, unit in rows:
        mine, base = f[key], b[key]
        ratio = f"{mine / base:.2f}" if mine and base else "—"
        out.append(f"| {label} | {mine}{unit} | {base}{unit} | {ratio} |")
    return out


def markdown(a, meta: dict, f: dict, q: dict) -> str:
    runners = (f"{q['runners']} runners × concurrency {q['concurrency_per_runner']}, "
               f"{a.tenants // q['runners']} tenant(s) each")
    m = meta["machine"]
    rows = [
        ("wall time", f"{f['single_wall_s']} s", f"{f['queued_wall_s']} s",
         f"{f['wall_ratio']}×"),
        ("throughput, hosts/s", f["single_hosts_per_s"], f["queued_hosts_per_s"], ""),
        ("throughput, steps/s", f["single_steps_per_s"], f["queued_steps_per_s"],
         f"DB-side {f['db_steps_per_s']} steps/s (first claim → last finish)"),
        ("overhead per step (wall)", "—", f"{f['overhead_ms_per_step']} ms",
         "(queued − single) / steps"),
        ("CPU, total", f"{f['single_cpu_s']} s", f"{f['queued_cpu_s']} s",
         f"runners {f['runners_cpu_s']} s + controller {f['controller_cpu_s']} s + "
         f"PostgreSQL {f['db_cpu_s']} s"),
        ("CPU per step", f"{f['cpu_ms_per_step_single']} ms", f"{f['cpu_ms_per_step_queued']} ms",
         ""),
        ("peak RSS", f"{f['single_max_rss_mb']} MB",
         f"runner {f['runner_max_rss_mb']} MB, controller {f['controller_max_rss_mb']} MB",
         "largest runner; GNU time %M"),
        ("database transactions", "—", f"{f['db_transactions']}",
         f"{f['db_transactions_per_step']} per step (pg_stat_database xact_commit)"),
        ("lab CPU", f"{f['lab_cpu_single_s']} s", f"{f['lab_cpu_queued_s']} s", ""),
    ]
    table = ["| | single process | queued | note |", "|---|---|---|---|"]
    table += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows]
    return "\n".join([
        f"<!-- section:{SECTION} -->",
        f"## Scale-out: {a.hosts} hosts in {a.tenants} tenants, single process vs the queue",
        "",
        f"- date: {meta['date']}; {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB, "
        f"Linux {m['kernel']}; load average at start {m['load_at_start']:.2f}",
        f"- salve: {meta['salve']}; PostgreSQL {meta['postgres']} (throwaway cluster, "
        "fsync off, loopback TCP)",
        f"- command: `{meta['command']}`",
        f"- playbook: `benches/playbooks/short3.yml` (3 × `Write-Output`, no simulated work), "
        f"{f['steps']} steps; NTLM with message encryption over HTTP; lab on 127.{a.block}.x.y "
        "pinned to core 1, every salve process and PostgreSQL pinned to core 0",
        f"- single: `salve run --forks {a.concurrency} --all-tenants --json --no-progress`",
        f"- queued: `salve run --queue URL --all-tenants --json --no-progress` and {runners}; "
        f"`--lease {a.lease} --poll 1 --exit-when-idle`; runners start once the controller has "
        f"enqueued ({q['enqueued_s']} s after its start); wall time is the controller's, "
        "which polls the database every second",
        f"- checks: every item done on its first claim ({q['work_done']} done, "
        f"{q['work_reclaimed']} re-claimed), {q['steps_done']} steps and "
        f"{q['intents_completed']} intents completed, every host ran the same WinRM commands "
        f"in both runs, every exit code 0; {q['owners']} runners took work; "
        f"{q['runner_stderr_warnings']} runner warnings; claim → running "
        f"{q['claim_to_start_ms']} ms on average",
        "",
        *table,
        *(side_by_side(f, meta["baseline_figures"], meta["baseline"])
          if "baseline_figures" in meta else []),
        "",
        *[f"{n}" for n in meta.get("notes", [])],
        f"<!-- /section:{SECTION} -->",
        "",
    ])


def write_section(path: Path, text: str) -> None:
    """Replace (or append) this harness's marked section of RESULTS.md."""
    old = path.read_text() if path.exists() else ""
    start, end = f"<!-- section:{SECTION} -->", f"<!-- /section:{SECTION} -->\n"
    if start in old and end in old:
        old = old[:old.index(start)] + old[old.index(end) + len(end):]
    path.write_text(old.rstrip("\n") + "\n\n" + text)


def both(a, salve: Path, work: Path, env: dict) -> tuple[dict, dict]:
    """The single-process run, then the queued run, with `salve`."""
    log(f"{salve}: single process: {a.hosts} hosts, forks {a.concurrency}")
    (work / "single").mkdir(parents=True, exist_ok=True)
    s = single(a, salve, work / "single", env)
    log(f"single: {s['controller']['wall_s']} s")
    log(f"queued: {a.runners} runners")
    (work / "queued").mkdir(parents=True, exist_ok=True)
    q = queued(a, salve, work / "queued", env)
    log(f"queued: {q['controller']['wall_s']} s")
    return s, q


def main() -> int:
    p = argparse.ArgumentParser(description="salve: single process vs the PostgreSQL queue")
    p.add_argument("--hosts", type=int, default=2000)
    p.add_argument("--tenants", type=int, default=20)
    p.add_argument("--runners", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=200,
                   help="total: forks of the single run, split evenly over the runners")
    p.add_argument("--block", type=int, default=60, help="the lab's loopback block (127.B.x.y)")
    p.add_argument("--lease", type=int, default=60)
    p.add_argument("--timeout", type=float, default=900, help="seconds per run")
    p.add_argument("--smoke", action="store_true",
                   help="40 hosts, 4 tenants, 2 runners, concurrency 8; checks, writes nothing")
    p.add_argument("--salve", type=Path, help="use this salve binary; do not build")
    p.add_argument("--baseline", type=Path,
                   help="also run both cases with this salve binary, after this build's")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--work", type=Path, help="scratch directory (default: a temp dir)")
    p.add_argument("--note", action="append", default=[], help="a line for RESULTS.md")
    a = p.parse_args()
    if a.smoke:
        a.hosts, a.tenants, a.runners, a.concurrency = 40, 4, 2, 8
    if not shutil.which("taskset"):
        log("taskset not found: processes are not pinned")
    salve = a.salve or build_salve("release")
    work = a.work or Path(tempfile.mkdtemp(prefix="salve-queue-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"scratch directory {work}")
    env = dict(os.environ, NO_PROXY=NO_PROXY, no_proxy=NO_PROXY)
    meta = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "command": "python3 benches/scaleout.py " + " ".join(sys.argv[1:]),
            "notes": a.note}
    sha = capture(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    meta["salve"] = f"{capture([str(salve), '--version'])} ({sha})"
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    version = re.search(r"\) (\S+)", capture([bins[-1], "--version"])) if bins else None
    meta["postgres"] = version.group(1) if version else "?"
    s, q = both(a, salve, work / "new", env)
    if a.baseline:
        meta["baseline"] = (f"{capture([str(a.baseline), '--version'])} at {a.baseline}, "
                            f"load average at its start {os.getloadavg()[0]:.2f}")
        bs, bq = both(a, a.baseline, work / "baseline", env)
        for msg in check(a, bs, bq):
            print(f"queue bench: baseline: {msg}", file=sys.stderr)
        meta["baseline_figures"] = figures(a, bs, bq)
        log(f"baseline: single {bs['controller']['wall_s']} s, "
            f"queued {bq['controller']['wall_s']} s")
    problems = check(a, s, q)
    for msg in problems:
        print(f"queue bench: FAIL {msg}", file=sys.stderr)
    f = figures(a, s, q)
    print(json.dumps({"this build": f, "baseline": meta.get("baseline_figures")}, indent=1))
    if not a.smoke:
        a.out.mkdir(parents=True, exist_ok=True)
        for r in (s, q):
            commands = [c["commands"] for c in r.pop("per_host").values()]
            r["commands_per_host"] = {"mean": statistics.mean(commands), "max": max(commands)}
        (a.out / "scaleout.json").write_text(json.dumps(
            {"meta": meta, "figures": f, "problems": problems, "single": s, "queued": q},
            indent=1) + "\n")
        text = markdown(a, meta, f, q)
        write_section(a.out / "RESULTS.md", text)
        print(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
