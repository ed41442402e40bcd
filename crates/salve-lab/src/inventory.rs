//! The Ansible-format inventory a lab writes for its fleet: tenants as groups with
//! `salve_tenant`, DAGs as child groups with `salve_dag`, and per host the loopback address
//! and port, the WinRM scheme and transport, the lab's user and password (clear text, or a
//! reference such as `env:SALVE_LAB_PASSWORD`) for the logon and for `become`, and package
//! sources for every update the
//! lab's build table knows, so the shipped remediation playbooks run against the lab as they are.
//!
//! The text is written by hand in a fixed order so that the same fleet always gives
//! byte-identical output (tests compare it).

use crate::catalog;
use crate::fleet::Fleet;

/// How the inventory refers to the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordIn {
    /// The lab's password in clear text (it is a test double's password).
    ClearText,
    /// A secret reference written as-is, e.g. `env:SALVE_LAB_PASSWORD`.
    Reference(String),
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Render the inventory for a fleet.
pub fn render(fleet: &Fleet, password: &PasswordIn) -> String {
    let core = fleet.core();
    let (user, clear) = core.credentials();
    let password = match password {
        PasswordIn::ClearText => q(clear),
        PasswordIn::Reference(r) => q(r),
    };
    let mut y = String::new();
    y.push_str(&format!(
        "# salve lab inventory: {} hosts, {} tenants.\n",
        fleet.hosts().len(),
        fleet.tenants().len()
    ));
    y.push_str("all:\n  vars:\n");
    y.push_str("    ansible_connection: winrm\n    ansible_winrm_transport: ntlm\n    ansible_winrm_scheme: http\n");
    y.push_str(&format!(
        "    ansible_user: {}\n    ansible_password: {password}\n",
        q(user)
    ));
    // Detached steps (Setup, msiexec) run as scheduled tasks under this account, whose
    // password logon can read the lab's pretend file share.
    y.push_str(&format!(
        "    ansible_become_user: {}\n    ansible_become_password: {password}\n",
        q(user)
    ));
    y.push_str(&source_vars());
    y.push_str("  children:\n");
    for tenant in fleet.tenants() {
        y.push_str(&format!(
            "    {tenant}:\n      vars:\n        salve_tenant: {}\n      hosts:\n",
            q(tenant)
        ));
        let members: Vec<usize> = (0..core.len())
            .filter(|&i| core.state(i).tenant == *tenant)
            .collect();
        for &i in &members {
            let addr = core.address(i);
            y.push_str(&format!(
                "        {}:\n          ansible_host: {}\n          ansible_port: {}\n",
                core.name(i),
                addr.ip(),
                addr.port()
            ));
        }
        let dags: Vec<_> = fleet
            .dags()
            .iter()
            .filter(|d| {
                d.members
                    .iter()
                    .any(|m| members.iter().any(|&i| core.name(i) == m))
            })
            .collect();
        if !dags.is_empty() {
            y.push_str("      children:\n");
            for d in dags {
                y.push_str(&format!(
                    "        {}:\n          vars:\n            salve_dag: {}\n          hosts:\n",
                    d.name,
                    q(&d.name)
                ));
                for m in &d.members {
                    y.push_str(&format!("            {m}: {{}}\n"));
                }
            }
        }
    }
    y
}

/// Inventory variables (at `all.vars` indentation) naming a package source for every CU and
/// SU the lab knows ([`catalog`]) and for the .NET Framework offline installers an update
/// path needs (`.NET 4.7.1`, `.NET 4.7.2`, `.NET 4.8`) on the lab's pretend file share, and
/// `salve_reboot_poll_seconds: 1` and a health gate polling every second for the lab's fast
/// clock. The lab checks that a SHA-256 is
/// given, not what it hashes (it has no packages), so each is the SHA-256 of the label. Labels
/// are salve's (`2019 CU8`, `2019 CU8 KB5000871`): the inventory is written for salve to read.
fn source_vars() -> String {
    use sha2::{Digest, Sha256};
    let mut y = String::from(
        "    salve_reboot_poll_seconds: 1\n    \
         salve_health_gate: {poll_seconds: 1}\n    \
         salve_license_switch: /IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF\n    \
         salve_update_sources:\n",
    );
    let mut entry = |label: String, file: String| {
        let sha = hex::encode(Sha256::digest(label.as_bytes()));
        y.push_str(&format!(
            "      \"{label}\": {{unc: '\\\\lab-repo\\exchange\\{file}', sha256: \"{sha}\"}}\n"
        ));
    };
    for cu in catalog::CUS {
        let short = short_name(cu.build);
        entry(
            format!("{short} {}", cu.label),
            format!("Exchange{short}-{}.iso", cu.label),
        );
        for su in catalog::SUS.iter().filter(|s| s.cu == cu.build) {
            entry(
                format!("{short} {} {}", cu.label, su.kb),
                format!("Exchange{short}-{}-{}.msp", cu.label, su.kb),
            );
        }
    }
    for (version, file) in [
        ("4.7.1", "NDP471-x86-x64-AllOS-ENU.exe"),
        ("4.7.2", "NDP472-x86-x64-AllOS-ENU.exe"),
        ("4.8", "ndp48-x86-x64-allos-enu.exe"),
    ] {
        entry(format!(".NET {version}"), file.to_string());
    }
    y
}

/// The family as salve's package labels spell it (`2019`, `SE`).
fn short_name(build: catalog::Build) -> &'static str {
    match catalog::Family::of(build) {
        Some(catalog::Family::Se) => "SE",
        Some(family) => family.setup_name(),
        None => "Exchange",
    }
}
