//! `salve assess` through the real binary.

use std::process::{Command, Output};

use serde_json::Value;

fn salve(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salve"))
        .arg("assess")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn json_prints_one_object_per_build_per_line() {
    let out = salve(&["--json", "15.1.2044.4", "15.2.9999.1", "15.01.2176.009"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);

    let cu17 = &lines[0];
    assert_eq!(cu17["build"], "15.1.2044.4");
    assert_eq!(cu17["family"], "Exchange 2016");
    assert_eq!(cu17["cu"], "CU17");
    assert_eq!(cu17["su_kb"], Value::Null);
    assert_eq!(cu17["known"], true);
    assert_eq!(cu17["proxylogon_vulnerable"], true);
    assert_eq!(cu17["proxyshell_vulnerable"], true);
    assert_eq!(cu17["route"], "cu_upgrade");
    let open: Vec<&str> = cu17["open_cves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut sorted = open.clone();
    sorted.sort_unstable();
    assert_eq!(open, sorted, "open_cves is sorted");
    for cve in [
        "CVE-2021-26855",
        "CVE-2021-34473",
        "CVE-2022-41082",
        "CVE-2026-42897",
    ] {
        assert!(open.contains(&cve), "{cve}");
    }
    let path = cu17["path"].as_array().unwrap();
    assert_eq!(path.len(), 2);
    assert_eq!(path[0]["kind"], "CU");
    assert_eq!(path[0]["display"], "CU23 (needs .NET 4.8)");
    assert_eq!(path[0]["target"], "15.1.2507.6");
    assert_eq!(path[0]["licence_switch"]["rule"], "diagnostic_data");
    assert_eq!(path[1]["kind"], "SU");
    assert_eq!(path[1]["kb"], "KB5121576");
    assert_eq!(path[1]["display"], "KB5121576");
    assert_eq!(
        cu17["path_display"],
        "2016 CU17 → CU23 (needs .NET 4.8) → KB5121576"
    );
    assert_eq!(cu17["stopgap"]["kb"], "KB5000871");
    assert_eq!(cu17["catalogue_version"], "2026-08-20.1");
    assert_eq!(cu17["catalogue_as_of"], "2026-08-20");
    assert_eq!(cu17["support"]["state"], "out_of_support");
    assert_eq!(
        cu17["successor"],
        "reach Exchange 2016 CU23 first (needed to coexist with Exchange SE RTM), then move side by side"
    );

    let unknown = &lines[1];
    assert_eq!(unknown["known"], false);
    assert_eq!(unknown["family"], "Exchange SE");
    assert_eq!(unknown["cu"], Value::Null);
    assert_eq!(unknown["route"], "unknown");
    assert_eq!(unknown["path"], serde_json::json!([]));

    let long = &lines[2];
    assert_eq!(long["build"], "15.1.2176.9");
    assert_eq!(long["su_kb"], "KB5000871");
    assert_eq!(long["proxylogon_vulnerable"], false);
}

#[test]
fn installed_kbs_and_dotnet_flags_change_the_answer() {
    let out = salve(&[
        "--json",
        "15.1.1415.8",
        "--installed-kb",
        "KB4000000,4000001",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let a: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(a["proxylogon_vulnerable"], true);

    let out = salve(&["--json", "--dotnet", "528040", "15.1.1415.2"]);
    let a: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        a["path_display"],
        "2016 CU8 → CU23 (needs .NET 4.8) → KB5121576"
    );
}

#[test]
fn human_output_is_a_short_block_per_build() {
    // The example (2019 CU14 with the October 2025 SU), SE's newest build, and an
    // out-of-support Exchange 2013 server, judged on a fixed day.
    let out = salve(&[
        "--on",
        "2026-12-07",
        "15.2.1544.36",
        "15.2.2562.46",
        "15.0.1497.48",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn bad_input_names_the_argument_and_exits_invalid_input() {
    let out = salve(&["15.1.2176.9", "15.x.1.2"]);
    assert_eq!(
        out.status.code(),
        Some(i32::from(salve::exit::INVALID_INPUT))
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("invalid BUILD argument `15.x.1.2`"), "{err}");
    assert!(err.contains("part 2 `x` is not a decimal number"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "nothing printed for the good build either"
    );

    let out = salve(&["15.1.2176.9", "--installed-kb", "KBX"]);
    assert_eq!(
        out.status.code(),
        Some(i32::from(salve::exit::INVALID_INPUT))
    );
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("--installed-kb")
    );

    let out = salve(&[]);
    assert_eq!(
        out.status.code(),
        Some(i32::from(salve::exit::INVALID_INPUT))
    );
}
