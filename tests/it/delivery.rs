//! How scripts reach `powershell.exe`, against the lab's model of it (`salve_lab::process`,
//! `typed_input`, `codepage`): a long script ending in a multi-line block runs whole and
//! returns its exit code; non-ASCII text survives both ways; and the old delivery (`-Command -`
//! with the script on stdin) loses the final block exactly as Windows PowerShell does.

use salve::script::{Deliver as _, POWERSHELL, Script};
use salve_lab::host_api::{LabProcess, SimHost as _, StdinChunk};
use salve_lab::log::LabEvent;
use serde_json::Value;

use crate::lab_support::{Lab, fleet, salve_run};

const ONE_HOST: &str = "seed: 7\ntenants:\n  - name: t\n    hosts: 1\n    builds: [15.2.792.3]\n";

/// A script of about `size` characters that ends in a multi-line `try` block printing its last
/// line and exiting 7.
pub fn long_script(size: usize) -> String {
    let mut text = String::new();
    let mut n = 0;
    while text.len() < size {
        n += 1;
        text.push_str(&format!("Write-Output 'filler line {n:05}'\n"));
    }
    text.push_str(
        "try {\n    Write-Output 'the last line'\n    exit 7\n} catch {\n    Write-Output 'caught'\n    exit 1\n}\n",
    );
    text
}

async fn collect(mut process: LabProcess) -> (Vec<u8>, i32) {
    let mut stdout = Vec::new();
    while let Some(o) = process.output.recv().await {
        match o {
            salve_lab::host_api::ProcessOutput::Stdout(b) => stdout.extend(b),
            salve_lab::host_api::ProcessOutput::Stderr(_) => {}
            salve_lab::host_api::ProcessOutput::Exit(code) => return (stdout, code),
        }
    }
    (stdout, -1)
}

#[tokio::test]
async fn the_old_stdin_delivery_loses_the_final_block_and_exits_0() {
    let fleet = fleet(ONE_HOST);
    let host = fleet.host("t-ex01").unwrap();
    let text = Script::raw(long_script(20_000)).render();
    let process = host.spawn(
        POWERSHELL,
        &["-NoProfile -NonInteractive -Command -".to_string()],
    );
    process
        .stdin
        .send(StdinChunk {
            data: text.into_bytes(),
            eof: true,
        })
        .unwrap();
    let (stdout, code) = collect(process).await;
    let stdout = String::from_utf8_lossy(&stdout);
    assert!(stdout.contains("filler line 00001"), "{stdout}");
    assert!(!stdout.contains("the last line"), "{stdout}");
    assert_eq!(code, 0, "dropped without a word");
    assert_eq!(
        fleet
            .log()
            .count("t-ex01", |e| matches!(e, LabEvent::InputDropped { .. })),
        1
    );
}

#[tokio::test]
async fn a_command_line_over_8191_characters_is_refused_by_cmd() {
    let fleet = fleet(ONE_HOST);
    let host = fleet.host("t-ex01").unwrap();
    let encoded = salve::script::encode_command(&long_script(5_000));
    let process = host.spawn(
        POWERSHELL,
        &[format!(
            "-NoProfile -NonInteractive -EncodedCommand {encoded}"
        )],
    );
    let (_, code) = collect(process).await;
    assert_eq!(code, 1);
    assert_eq!(
        fleet.log().count("t-ex01", |e| matches!(
            e,
            LabEvent::CommandLineTooLong { .. }
        )),
        1
    );
}

#[tokio::test]
async fn every_script_fits_the_command_line_and_its_text_goes_on_stdin() {
    for size in [10, 20_000, 200_000] {
        let delivery = Script::raw(long_script(size)).delivery();
        assert!(
            delivery.program.len() + 1 + delivery.arguments.len() <= 8191,
            "{size}"
        );
        assert!(delivery.arguments.contains("-EncodedCommand"), "{size}");
        assert!(delivery.stdin.contains("the last line"), "{size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_script_ending_in_a_block_runs_whole_over_winrm() {
    let lab = Lab::start(65, ONE_HOST).await;
    let inventory = lab.inventory().write();
    let mut script = String::new();
    for line in long_script(20_000).lines() {
        script.push_str("          ");
        script.push_str(line);
        script.push('\n');
    }
    let playbook = lab.write(
        "pb.yml",
        &format!(
            "- hosts: all\n  tasks:\n    - name: long\n      powershell:\n        script: |\n{script}      register: long\n      failed_when: false\n    - assert:\n        that:\n          - long.rc == 7\n          - \"'the last line' in long.stdout\"\n          - \"'filler line 00001' in long.stdout\"\n"
        ),
    );
    assert!(std::fs::read_to_string(&playbook).unwrap().len() > 20_000);
    let (code, events, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "task_finished" && e["status"] == "failed")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_text_survives_both_ways() {
    let lab = Lab::start(62, ONE_HOST).await;
    let inventory = lab.inventory().write();
    let playbook = lab.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - powershell: {script: \"Write-Output 'Größe: Datenbank-Ü €'\"}\n      register: out\n    - assert: {that: [\"out.stdout | trim == 'Größe: Datenbank-Ü €'\"]}\n",
    );
    let (code, _, all) = salve_run(&playbook, &inventory, &[]).await;
    assert_eq!(code, 0, "{all}");
}
