//! The Ansible-style corpus under `tests/ansible/` (blocks nested two deep with rescue and
//! always, task files imported and included with loops, every Ansible filter and test salve
//! lists, the `ansible.windows` names): salve runs it against the lab, `salve check` accepts
//! it, and Ansible's own `ansible-playbook --syntax-check` accepts it too, so salve's spelling
//! stays Ansible's (ansible-core and the ansible.windows collection come from
//! `tests/peers/install.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::lab_support::{Lab, salve_with};

const TWO_HOSTS: &str =
    "seed: 7\ntime_scale: 60\ntenants:\n  - name: t\n    hosts: 2\n    builds: [15.2.1544.14]\n";

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ansible")
}

fn extra_vars() -> String {
    format!("@{}", corpus().join("vars/extra.yml").display())
}

/// `(task, status)` of every `task_finished` of `host`, in order.
fn finished(events: &[Value], host: &str) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["event"] == "task_finished" && e["host"] == host)
        .map(|e| {
            (
                e["task"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn status_of<'a>(done: &'a [(String, String)], task: &str) -> Vec<&'a str> {
    done.iter()
        .filter(|(t, _)| t == task)
        .map(|(_, s)| s.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_runs_against_the_lab() {
    let lab = Lab::start(60, TWO_HOSTS).await;
    let inventory = lab.inventory().write();
    let site = corpus().join("site.yml");
    let inv = inventory.display().to_string();
    let (code, stdout, stderr) = salve_with(
        &[
            "run",
            "--json",
            "--all-tenants",
            site.to_str().unwrap(),
            "-i",
            &inv,
            "-e",
            &extra_vars(),
        ],
        &[("NO_PROXY", "127.0.0.0/8")],
    )
    .await;
    let all = format!("{stdout}{stderr}");
    assert_eq!(code, 0, "{all}");
    let events: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let hosts = lab.host_names();
    for host in &hosts {
        let done = finished(&events, host);
        // Blocks: the inner failure, the inner rescue (which fails again), the inner always,
        // the outer rescue, the outer always and its listening handler; the host goes on.
        assert_eq!(
            status_of(&done, "a patch step fails"),
            ["failed"],
            "{host}: {all}"
        );
        assert!(status_of(&done, "never reached after the failure").is_empty());
        assert_eq!(
            status_of(&done, "inner rescue sees the failed task"),
            ["ok"]
        );
        assert_eq!(status_of(&done, "the rollback fails too"), ["failed"]);
        assert_eq!(status_of(&done, "inner always runs"), ["ok"]);
        assert_eq!(
            status_of(&done, "outer rescue sees the rollback's failure"),
            ["ok"]
        );
        assert_eq!(status_of(&done, "leave maintenance"), ["changed"]);
        assert_eq!(status_of(&done, "record that maintenance was left"), ["ok"]);
        assert_eq!(status_of(&done, "the host was rescued and goes on"), ["ok"]);
        assert_eq!(status_of(&done, "never runs"), ["skipped"]);
        assert!(status_of(&done, "never runs either").is_empty());
        // Task files: the included file's tasks once per database, in order.
        assert_eq!(status_of(&done, "visit the database"), ["ok", "ok", "ok"]);
        assert_eq!(
            status_of(&done, "every database was visited in order"),
            ["ok"]
        );
        assert_eq!(status_of(&done, "so only DB02 was visited again"), ["ok"]);
        // Filters and tests: every assertion held.
        for task in [
            "dictionaries",
            "regular expressions",
            "formats",
            "values",
            "lists",
            "tests",
        ] {
            assert_eq!(status_of(&done, task), ["ok"], "{host} {task}: {all}");
        }
        // The ansible.windows names did their work on the lab host.
        assert_eq!(status_of(&done, "free-form win_shell"), ["changed"]);
        assert_eq!(status_of(&done, "its output"), ["ok"]);
        assert_eq!(status_of(&done, "restart"), ["changed"], "{all}");
        assert_eq!(status_of(&done, "back"), ["ok"]);
        // One line per loop item, named by its label.
        let items: Vec<&str> = events
            .iter()
            .filter(|e| e["event"] == "loop_item" && e["host"] == host.as_str())
            .filter_map(|e| e["item"].as_str())
            .collect();
        assert_eq!(
            items,
            ["DB01/1", "DB01/2", "DB02/1", "DB02/2", "DB02/1", "DB02/2"],
            "{host}"
        );
    }
    // run_once: one host ran it, the other took its result.
    let mut once: Vec<&str> = hosts
        .iter()
        .flat_map(|h| {
            events.iter().filter(move |e| {
                e["event"] == "task_finished"
                    && e["host"] == h.as_str()
                    && e["task"] == "once, on the controller"
            })
        })
        .filter_map(|e| e["status"].as_str())
        .collect();
    once.sort();
    assert_eq!(once, ["ok", "skipped"]);
    for host in &hosts {
        let done = finished(&events, host);
        assert_eq!(
            status_of(&done, "every host has the result of the task run once"),
            ["ok"]
        );
    }
    let gather_warnings = events
        .iter()
        .filter(|e| {
            e["event"] == "warning" && e["message"].as_str().unwrap_or("").contains("gather_facts")
        })
        .count();
    assert_eq!(gather_warnings, 1, "gather_facts: true is said once");
    let summary = events
        .iter()
        .find(|e| e["event"] == "run_finished")
        .unwrap();
    for h in summary["summary"]["hosts"].as_array().unwrap() {
        assert_eq!(h["outcome"], "ok", "{h}");
        // Each rescued failure counts as ignored, as Ansible counts it `rescued`.
        assert_eq!(h["counts"]["failed"], 0, "{h}");
        assert_eq!(h["counts"]["ignored"], 2, "{h}");
    }

    // Plain output: one line per loop item, as Ansible prints them.
    let includes = corpus().join("includes.yml");
    let (code, text, _) = salve_with(
        &[
            "run",
            "--all-tenants",
            "-v",
            includes.to_str().unwrap(),
            "-i",
            &inv,
        ],
        &[("NO_PROXY", "127.0.0.0/8")],
    )
    .await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "ok: [{}] copies of the database => (item=DB02/2)",
            hosts[0]
        )),
        "{text}"
    );
}

#[test]
fn the_corpus_passes_salve_check() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inv.yml");
    std::fs::write(
        &inventory,
        "all:\n  hosts:\n    ex01: {ansible_host: 127.0.0.1}\n",
    )
    .unwrap();
    for playbook in ["site.yml", "check-only.yml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_salve"))
            .arg("check")
            .arg(corpus().join(playbook))
            .arg("-i")
            .arg(&inventory)
            .args(["-e", &extra_vars()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{playbook}: {text}");
    }
}

#[test]
fn the_corpus_passes_ansible_playbook_syntax_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ansible = root.join(".venv/bin/ansible-playbook");
    assert!(
        ansible.exists(),
        "ansible-playbook missing at {}: run tests/peers/install.sh",
        ansible.display()
    );
    for playbook in ["site.yml", "check-only.yml"] {
        let out = Command::new(&ansible)
            .current_dir(corpus())
            .args(["--syntax-check", "-i", "localhost,", playbook])
            .env("ANSIBLE_NOCOLOR", "1")
            .env("PYTHONWARNINGS", "ignore")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{playbook}: {text}");
        assert!(text.contains(&format!("playbook: {playbook}")), "{text}");
    }
    // The check is real: a key Ansible does not know fails it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "- hosts: all\n  rolling: dag\n  tasks: []\n").unwrap();
    let out = Command::new(&ansible)
        .args(["--syntax-check", "-i", "localhost,"])
        .arg(&bad)
        .env("PYTHONWARNINGS", "ignore")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn check_reports_an_error_inside_an_imported_task_file_at_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("tasks")).unwrap();
    std::fs::write(d.join("inv.yml"), "all:\n  hosts:\n    ex01: {}\n").unwrap();
    std::fs::write(
        d.join("pb.yml"),
        "- hosts: all\n  tasks:\n    - import_tasks: tasks/common.yml\n    - include_tasks: tasks/missing.yml\n    - import_tasks: tasks/loop.yml\n",
    )
    .unwrap();
    std::fs::write(
        d.join("tasks/common.yml"),
        "- name: fine\n  debug: {msg: hi}\n- name: typo\n  debug:\n    mesage: hi\n",
    )
    .unwrap();
    std::fs::write(d.join("tasks/loop.yml"), "- import_tasks: loop.yml\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_salve"))
        .current_dir(d)
        .args(["check", "pb.yml", "-i", "inv.yml"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("tasks/common.yml:5:13: tasks[1].debug.mesage: unknown field `mesage`"),
        "{text}"
    );
    assert!(
        text.contains("pb.yml:4:22: plays[0].tasks[1].include_tasks: no file `tasks/missing.yml`"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_and_task_files_are_planned_and_journaled_step_by_step() {
    let lab = Lab::start(61, TWO_HOSTS).await;
    let inv = lab.inventory().write();
    lab.write(
        "leave.yml",
        "- name: leave\n  ansible.windows.win_shell: Write-Output leave\n",
    );
    let pb = lab.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - name: maintenance\n      block:\n        - name: patch\n          ansible.windows.win_shell: Write-Output patch\n      always:\n        - import_tasks: leave.yml\n",
    );
    let out = inv.parent().unwrap().join("plan/plan.json");
    let (code, _, err) = salve_with(
        &[
            "plan",
            pb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--no-progress",
            "-o",
            out.to_str().unwrap(),
        ],
        &[("NO_PROXY", "127.0.0.0/8")],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    for host in plan["hosts"].as_array().unwrap() {
        let steps: Vec<(u64, &str)> = host["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["task_index"].as_u64().unwrap(),
                    s["task"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(steps, [(0, "patch"), (1, "leave")], "{host}");
    }

    // The run journals the same steps, each with its durable intent (they change hosts).
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let env = [("NO_PROXY", "127.0.0.0/8"), ("SALVE_STATE_DIR", state_dir)];
    let (code, stdout, err) = salve_with(
        &[
            "run",
            "--json",
            pb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{stdout}{err}");
    let run_id = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "run_started")
        .and_then(|e| e["run_id"].as_str().map(str::to_string))
        .unwrap();
    let (code, shown, err) = salve_with(&["runs", "show", &run_id, "--json"], &env).await;
    assert_eq!(code, 0, "{err}");
    let detail: Value = serde_json::from_str(&shown).unwrap();
    for host in lab.host_names() {
        let steps: Vec<(u64, &str)> = detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["host"] == host.as_str())
            .map(|s| {
                (
                    s["task_index"].as_u64().unwrap(),
                    s["task"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(steps, [(0, "patch"), (1, "leave")], "{shown}");
        let intents = detail["intents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["host"] == host.as_str() && !i["completed_at"].is_null())
            .count();
        assert_eq!(intents, 2, "{shown}");
    }
}
