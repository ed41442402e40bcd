//! Loading inventories and playbooks from files, and the `salve check` / `salve inventory`
//! commands run as the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use salve::config;
use salve::diag::Diagnostics;
use salve::model::{Inventory, Vars};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Rendered diagnostics with the temp dir replaced by `[TMP]`.
    fn render(&self, diags: &Diagnostics) -> String {
        diags
            .render()
            .replace(&self.dir.path().display().to_string(), "[TMP]")
    }
}

fn inventory(files: &Files, text: &str) -> Inventory {
    let p = files.write("inv.yml", text);
    config::inventory::load(&[p])
        .unwrap_or_else(|e| panic!("{}", e.render()))
        .value
}

const INVENTORY: &str = "\
all:
  vars:
    site: hq
  children:
    exchange:
      children:
        dag1:
          vars: {salve_dag: DAG1}
          hosts:
            ex[01:02].contoso.local:
        edge:
          hosts:
            edge01.contoso.local:
              exchange_role: edge
";

#[test]
fn ansible_sample_resolves_groups_ranges_and_vars() {
    let f = Files::new();
    let inv = inventory(&f, INVENTORY);
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ex01.contoso.local",
            "ex02.contoso.local",
            "edge01.contoso.local"
        ]
    );
    let ex01 = inv.host("ex01.contoso.local").unwrap();
    assert_eq!(ex01.groups, ["all", "exchange", "dag1"]);
    assert_eq!(ex01.vars["salve_dag"], "DAG1");
    assert_eq!(ex01.vars["site"], "hq");
    assert_eq!(ex01.location.as_ref().unwrap().line, 10);
    assert_eq!(inv.groups["exchange"].children, ["dag1", "edge"]);
    assert!(inv.groups.contains_key("ungrouped"));
}

#[test]
fn examples_pass_check() {
    let inventories = ["inventories/single-site.yml", "inventories/msp.yml"];
    for inv in inventories {
        let loaded = config::inventory::load(&[repo(inv)])
            .unwrap_or_else(|e| panic!("{inv}: {}", e.render()));
        assert!(loaded.warnings.is_empty(), "{inv} has clear-text passwords");
        config::playbook::load(&repo("playbooks/hello.yml"), &loaded.value, &Vars::new())
            .unwrap_or_else(|e| panic!("hello.yml on {inv}: {}", e.render()));
    }
    let msp = config::inventory::load(&[repo("inventories/msp.yml")])
        .unwrap()
        .value;
    assert_eq!(msp.tenants(), ["Fabrikam Ltd", "Tailspin Toys", "contoso"]);
    let tex: Vec<&str> = msp
        .hosts
        .iter()
        .filter(|h| h.name.starts_with("tex"))
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(
        tex,
        [
            "tex01.tailspin.local",
            "tex03.tailspin.local",
            "tex05.tailspin.local"
        ]
    );
}

#[test]
fn bad_inventory_reports_everything_at_once() {
    let f = Files::new();
    let p = f.write(
        "inv.yml",
        "all:
  hosts:
    - ex01
  children:
    dag1:
      hostz:
        ex02:
    dag2:
      hosts:
        ex[3:1]:
    t1:
      vars: {salve_tenant: true}
      hosts: {ex09: }
    t2:
      vars: {salve_tenant: true}
      hosts: {ex09: }
",
    );
    let e = config::inventory::load(&[p]).unwrap_err();
    insta::assert_snapshot!("bad_inventory", f.render(&e));
}

#[test]
fn bad_playbook_reports_every_class_with_positions() {
    let f = Files::new();
    let inv = inventory(&f, INVENTORY);
    let p = f.write(
        "play.yml",
        r#"- name: bad
  hosts: exchnage
  serail: 2
  forks: 0
  serial: "150%"
  tasks:
    - name: two modules
      debug: {msg: hi}
      fail: {msg: no}
    - name: no module
      when: true
    - name: unknown module
      win_updates: {category_names: [SecurityUpdates]}
    - name: bad expression
      debug: {msg: x}
      when: "a =="
    - name: undefined variable
      debug:
        msg: "{{ greetng }}"
      notify: restart
    - name: wrong types
      pause: {}
      timeout: 5 days
      ignore_errors: maybe
      loop: 5
      register: [r]
    - name: template in when
      debug: {msg: x}
      when: "{{ site == 'hq' }}"
  handlers:
    - name: Restart IIS
      debug: {msg: restarted}
- hosts: "all:&"
  tasks: {}
- just a string
"#,
    );
    let mut extra = Vars::new();
    extra.insert("greeting".into(), "hi".into());
    let e = config::playbook::load(&p, &inv, &extra).unwrap_err();
    insta::assert_snapshot!("bad_playbook", f.render(&e));
}

#[test]
fn variables_defined_by_earlier_tasks_loops_and_magic_are_known() {
    let f = Files::new();
    let inv = inventory(&f, INVENTORY);
    let p = f.write(
        "play.yml",
        r#"- hosts: dag1
  vars:
    target: "{{ salve_dag }}-{{ site }}"
  tasks:
    - debug: {msg: "{{ later }}"}
    - powershell: {script: "hostname"}
      register: out
      until: out.rc == 0
      changed_when: false
    - set_fact:
        later: "{{ out.stdout }}"
    - debug: {msg: "{{ item }} {{ later }} {{ groups['dag1'] | length }} {{ inventory_hostname }}"}
      loop: "{{ groups['dag1'] }}"
      when: maybe_set | default(false)
- hosts: edge
  tasks:
    - debug: {msg: "{{ exchange_role }} {{ later }} {{ item }}"}
"#,
    );
    let e = config::playbook::load(&p, &inv, &Vars::new()).unwrap_err();
    let got: Vec<String> = e
        .iter()
        .map(|d| {
            format!(
                "{} {}: {}",
                d.location.as_ref().unwrap().line,
                d.field,
                d.message
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "5 plays[0].tasks[0].debug.msg: undefined variable `later`",
            "17 plays[1].tasks[0].debug.msg: undefined variable `item`",
        ]
    );
}

#[test]
fn good_playbook_builds_the_model() {
    let f = Files::new();
    let inv = inventory(&f, INVENTORY);
    let p = f.write(
        "play.yml",
        r#"- hosts: "exchange:!edge"
  serial: [1, "50%"]
  max_fail_percentage: 10
  forks: 4
  tasks:
    - name: run
      powershell: {script: "Get-Date"}
      timeout: 30m
      retries: 2
      delay: 10
      ignore_errors: yes
      when: [site == 'hq', "salve_dag == 'DAG1'"]
      notify: [done]
      tags: upgrade
  handlers:
    - name: done
      debug: {msg: ok}
"#,
    );
    let pb =
        config::playbook::load(&p, &inv, &Vars::new()).unwrap_or_else(|e| panic!("{}", e.render()));
    let play = &pb.plays[0];
    assert_eq!(play.name, "exchange:!edge");
    assert_eq!(
        play.serial,
        [
            salve::model::BatchSize::Count(1),
            salve::model::BatchSize::Percent(50.0)
        ]
    );
    assert_eq!(
        (play.max_fail_percentage, play.forks),
        (Some(10.0), Some(4))
    );
    let t = &play.tasks[0];
    assert_eq!(t.timeout, Some(std::time::Duration::from_secs(1800)));
    assert_eq!(
        (t.retries, t.delay.as_secs(), t.ignore_errors),
        (2, 10, true)
    );
    assert_eq!(t.when.len(), 2);
    assert_eq!(t.when[1].location.line, 12);
    assert_eq!(
        (t.notify.as_slice(), t.tags.as_slice()),
        (&["done".to_string()][..], &["upgrade".to_string()][..])
    );
    assert_eq!(t.call.module, "powershell");
    assert_eq!(pb.digest.len(), 64);
}

/// Ansible's `async` and `poll` carry over: `async` bounds the wait like `timeout` (salve never
/// stops a detached step, only its waiting), `poll` is the longest pause between looks;
/// both bounds at once, and `poll: 0` (fire and forget), are refused where they stand.
#[test]
fn async_and_poll_are_ansibles_keys_for_the_wait() {
    let f = Files::new();
    let inv = inventory(&f, INVENTORY);
    let good = f.write(
        "good.yml",
        "- hosts: exchange\n  tasks:\n    - name: cu\n      pause: {seconds: 1}\n      async: 2h\n      poll: 30\n",
    );
    let pb = config::playbook::load(&good, &inv, &Vars::new())
        .unwrap_or_else(|e| panic!("{}", e.render()));
    let t = &pb.plays[0].tasks[0];
    assert_eq!(t.timeout, Some(std::time::Duration::from_secs(7200)));
    assert_eq!(t.poll, Some(std::time::Duration::from_secs(30)));
    let bad = f.write(
        "bad.yml",
        "- hosts: exchange\n  tasks:\n    - name: both\n      pause: {seconds: 1}\n      timeout: 1h\n      async: 2h\n    - name: forget\n      pause: {seconds: 1}\n      poll: 0\n",
    );
    let e = config::playbook::load(&bad, &inv, &Vars::new()).unwrap_err();
    let text = e.render();
    assert!(
        text.contains("bad.yml:6:") && text.contains("give `timeout` or `async`, not both"),
        "{text}"
    );
    assert!(
        text.contains("bad.yml:9:") && text.contains("poll: 0 (fire and forget) has no equivalent"),
        "{text}"
    );
}

#[test]
fn yaml_level_errors_are_single_clear_diagnostics() {
    let f = Files::new();
    let inv = inventory(&f, INVENTORY);
    for (text, expected) in [
        (
            "- hosts: all\n  hosts: dag1\n",
            "play.yml:2:3: duplicate key `hosts`",
        ),
        ("- hosts: &h all\n", "anchors and aliases"),
        ("hosts: all\n", "expected a list at the top level"),
        ("- hosts: [all\n", "invalid YAML"),
    ] {
        let p = f.write("play.yml", text);
        let e = config::playbook::load(&p, &inv, &Vars::new()).unwrap_err();
        assert_eq!(e.len(), 1, "{text}");
        assert!(f.render(&e).contains(expected), "{text}: {}", f.render(&e));
    }
}

fn salve(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_command_accepts_examples_and_applies_the_tenant_rule() {
    let (code, out, err) = salve(&[
        "check",
        "playbooks/hello.yml",
        "-i",
        "inventories/single-site.yml",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "ok: playbooks/hello.yml: 1 play, 5 tasks, 4 hosts matched\n"
        ),
        "{err}"
    );

    let (code, _, err) = salve(&["check", "playbooks/hello.yml", "-i", "inventories/msp.yml"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("spans 3 tenants: `Fabrikam Ltd`, `Tailspin Toys`, `contoso`"),
        "{err}"
    );

    let (code, out, _) = salve(&[
        "check",
        "playbooks/hello.yml",
        "-i",
        "inventories/msp.yml",
        "--tenant",
        "contoso",
        "-l",
        "cex0[1-2]*",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "ok: playbooks/hello.yml: 1 play, 5 tasks, 2 hosts matched\n"
        )
    );

    let (code, out, _) = salve(&[
        "check",
        "playbooks/hello.yml",
        "-i",
        "inventories/msp.yml",
        "--all-tenants",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "ok: playbooks/hello.yml: 1 play, 5 tasks, 10 hosts matched\n"
        )
    );
}

#[test]
fn check_command_renders_carets_and_exits_invalid_input() {
    let f = Files::new();
    let inv = f.write("inv.yml", INVENTORY);
    let play = f.write(
        "play.yml",
        "- hosts: all\n  tasks:\n    - debug: {msg: \"{{ nope }}\"}\n",
    );
    let (code, out, err) = salve(&[
        "check",
        play.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "-e",
        "x=1",
    ]);
    assert_eq!((code, out.as_str()), (3, ""));
    assert!(
        err.contains("play.yml:3:20: plays[0].tasks[0].debug.msg: undefined variable `nope`"),
        "{err}"
    );
    assert!(
        err.contains("3 |     - debug: {msg: \"{{ nope }}\"}\n  |                    ^"),
        "{err}"
    );
    assert!(err.ends_with("1 error found; nothing was run\n"), "{err}");
}

#[test]
fn inventory_json_shows_references_never_secret_values() {
    let f = Files::new();
    let inv = f.write(
        "inv.yml",
        "all:\n  children:\n    a:\n      vars: {salve_tenant: true, ansible_password: Sup3rS3cret!}\n      hosts:\n        h1: {ansible_become_password: An0therS3cret}\n    b:\n      vars: {salve_tenant: B Corp, ansible_password: env:B_PW}\n      hosts: {h2: }\n",
    );
    let (code, out, err) = salve(&["inventory", "-i", inv.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    for text in [&out, &err] {
        assert!(
            !text.contains("Sup3rS3cret") && !text.contains("An0therS3cret"),
            "secret leaked: {text}"
        );
    }
    assert!(
        err.contains("warning:")
            && err.contains("password written in clear text on line 4 (and 1 more in this file)"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["hosts"]["h1"]["vars"]["ansible_password"],
        "<clear text, redacted>"
    );
    assert_eq!(v["hosts"]["h1"]["tenant"], "a");
    assert_eq!(v["hosts"]["h2"]["vars"]["ansible_password"], "env:B_PW");
    assert_eq!(v["hosts"]["h2"]["groups"], serde_json::json!(["all", "b"]));
    assert_eq!(v["groups"]["b"]["tenant"], "B Corp");
    assert_eq!(
        v["groups"]["a"]["vars"]["ansible_password"],
        "<clear text, redacted>"
    );

    let (code, out, _) = salve(&[
        "inventory",
        "-i",
        inv.to_str().unwrap(),
        "--json",
        "--tenant",
        "B Corp",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hosts"].as_object().unwrap().len(), 1);
    assert!(v["groups"].get("a").is_none());

    let (code, _, err) = salve(&["inventory", "-i", inv.to_str().unwrap(), "--limit", "h3"]);
    assert_eq!(code, 3);
    assert!(err.contains("`h3` is neither a host nor a group"), "{err}");
}

#[test]
fn rolling_and_rescue_are_play_keys() {
    let files = Files::new();
    let inv = inventory(&files, INVENTORY);
    let ok = files.write(
        "ok.yml",
        "- hosts: all\n  rolling: dag\n  tasks:\n    - debug: {msg: x}\n  rescue:\n    - name: leave maintenance\n      debug: {msg: back}\n",
    );
    let pb = config::playbook::load(&ok, &inv, &Vars::new())
        .unwrap_or_else(|e| panic!("{}", e.render()));
    assert_eq!(pb.plays[0].rolling, salve::model::Rolling::Dag);
    assert_eq!(pb.plays[0].rescue[0].name, "leave maintenance");
    let bad = files.write("bad.yml", "- hosts: all\n  rolling: dags\n  tasks: []\n");
    let err = files.render(&config::playbook::load(&bad, &inv, &Vars::new()).unwrap_err());
    assert!(
        err.contains("[TMP]/bad.yml:2:12: plays[0].rolling: unknown rolling strategy `dags`"),
        "{err}"
    );
}

/// A playbook that connects to nothing.
const DEBUG_PLAY: &str = "- hosts: all\n  tasks:\n    - debug: {msg: hi}\n";

#[test]
fn check_reports_a_bad_connection_type_with_its_line() {
    let f = Files::new();
    let inv = f.write(
        "inv.yml",
        "all:\n  children:\n    site:\n      vars:\n        ansible_connection: telnet\n      hosts:\n        ex01:\n        ex02:\n",
    );
    let pb = f.write("pb.yml", DEBUG_PLAY);
    let (code, out, err) = salve(&["check", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(
        err.contains("inv.yml:5:29: all.children.site.vars.ansible_connection: expected winrm, ssh or local, found string `telnet`"),
        "{err}"
    );
    // Once for the group's variable, not once per host.
    assert!(err.ends_with("1 error found; nothing was run\n"), "{err}");
}

#[test]
fn check_and_plan_refuse_a_bad_window_with_its_line() {
    let f = Files::new();
    let inv = f.write(
        "inv.yml",
        "all:\n  hosts:\n    ex01:\n      ansible_host: 127.0.0.1\n      ansible_port: 1\n      salve_maintenance_window: Sat 25:00-Sun 04:00 UTC\n",
    );
    let pb = f.write("pb.yml", DEBUG_PLAY);
    let (pb, inv) = (pb.to_str().unwrap(), inv.to_str().unwrap());
    let expected = "inv.yml:6:33: all.hosts.ex01.salve_maintenance_window: `25:00` is not a time";
    let (code, out, err) = salve(&["check", pb, "-i", inv]);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(err.contains(expected), "{err}");
    let plan = f.dir.path().join("plan.json");
    let (code, _, err) = salve(&[
        "plan",
        pb,
        "-i",
        inv,
        "-o",
        plan.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(expected), "{err}");
    assert!(!plan.exists());
}

#[test]
fn every_bad_host_setting_is_reported_at_once_before_connecting() {
    let f = Files::new();
    let inv = f.write(
        "inv.yml",
        "all:
  vars:
    ansible_host: 127.0.0.1
  children:
    dag:
      vars: {salve_dag: true}
      hosts:
        ex01: {ansible_port: 70000}
        ex02: {salve_maintenance_window: [daily 01:00-02:00 UTC, 7]}
        ex03: {salve_dag: [a, b], ansible_winrm_transport: kerberoz}
",
    );
    let pb = f.write("pb.yml", DEBUG_PLAY);
    let (pb, inv) = (pb.to_str().unwrap(), inv.to_str().unwrap());
    for command in [
        &["check", pb][..],
        &["run", pb, "--no-progress"],
        &["inventory"],
    ] {
        let (code, out, err) = salve(&[command, &["-i", inv]].concat());
        assert_eq!((code, out.as_str()), (3, ""), "{command:?}: {err}");
        for expected in [
            "inv.yml:6:25: all.children.dag.vars.salve_dag: expected a DAG name, found boolean `true`",
            "inv.yml:8:30: all.children.dag.hosts.ex01.ansible_port: expected a port number 1-65535, found number `70000`",
            "inv.yml:9:66: all.children.dag.hosts.ex02.salve_maintenance_window[1]: expected a window such as `Sat 22:00-Sun 04:00 Europe/Brussels`, found number `7`",
            "inv.yml:10:27: all.children.dag.hosts.ex03.salve_dag: expected a DAG name, found a list",
            "inv.yml:10:60: all.children.dag.hosts.ex03.ansible_winrm_transport: expected ntlm, negotiate, basic, kerberos or certificate, found string `kerberoz`",
        ] {
            assert!(err.contains(expected), "{command:?}: {expected}\n{err}");
        }
        assert!(
            err.ends_with("5 errors found; nothing was run\n"),
            "{command:?}: {err}"
        );
    }
}

#[test]
fn a_dag_named_by_a_number_is_rolled_one_member_at_a_time() {
    let f = Files::new();
    let inv = f.write(
        "inv.yml",
        "all:\n  children:\n    dag:\n      vars: {salve_dag: 1}\n      hosts: {ex01: , ex02: , ex03: }\n    other:\n      hosts: {ex04: , ex05: }\n",
    );
    let pb = f.write(
        "pb.yml",
        "- hosts: all\n  rolling: dag\n  tasks:\n    - debug: {msg: hi}\n",
    );
    let (code, out, err) = salve(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let started: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "play_started")
        .unwrap_or_else(|| panic!("no play_started in {out}"));
    assert_eq!(
        started["batches"],
        serde_json::json!([["ex01"], ["ex02"], ["ex03"], ["ex04", "ex05"]])
    );
}

/// Whether a run may let a finished host's facts go: the playbook or a task file it includes
/// mentions `hostvars` (anywhere in its text), or an inventory variable does.
#[test]
fn mentions_of_hostvars_are_found_in_task_files_and_inventory_variables() {
    let f = Files::new();
    let inv = inventory(&f, INVENTORY);
    assert!(!inv.mentions_hostvars());
    f.write(
        "peek.yml",
        "- debug: {msg: \"{{ hostvars['ex01.contoso.local'].site }}\"}\n",
    );
    let plain = f.write(
        "plain.yml",
        "- hosts: exchange\n  tasks:\n    - debug: {msg: hi}\n",
    );
    let including = f.write(
        "including.yml",
        "- hosts: exchange\n  tasks:\n    - include_tasks: peek.yml\n",
    );
    let load = |p: &std::path::Path| {
        config::playbook::load(p, &inv, &Vars::new()).unwrap_or_else(|e| panic!("{}", e.render()))
    };
    assert!(!load(&plain).mentions_hostvars);
    assert!(load(&including).mentions_hostvars);
    let peeking = inventory(
        &f,
        "all:\n  hosts:\n    ex01:\n      x: \"{{ hostvars['ex02'].y }}\"\n    ex02:\n      y: 1\n",
    );
    assert!(peeking.mentions_hostvars());
}
