//! `exchange_ioc_scan`: the Test-ProxyLogon checks (HttpProxy, OABGenerator and ECP logs, the
//! Application log, web shells and LSASS dumps in known paths) played against the host's
//! simulated logs and files.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::command::Out;
use crate::fleet_core::FleetCore;
use crate::state::{HostState, INSTALL_PATH};
use salve_contract::contract::{Evidence, IocFinding, IocScanAnswer, ScriptId};

/// Scan and answer; a finding is data, not a failure (exit 0).
pub(super) fn run(core: &FleetCore, idx: usize, out: &Out) -> i32 {
    out.line(
        "Scanning HttpProxy, OABGeneratorLog and ECP logs, the Application log and known paths...",
    );
    let now = core.clock.now();
    let answer = core.with_host(idx, |s| ioc_scan(s, now));
    if !answer.compromised {
        out.line("Nothing suspicious detected");
    }
    super::answer(core, idx, ScriptId::ExchangeIocScan, out, &answer);
    0
}

const HTTPPROXY_COLUMNS: usize = 9;
const ANCHOR_COLUMN: usize = 7;
const STATUS_COLUMN: usize = 8;

/// PowerShell `-like` with `*` wildcards only, case-insensitive.
fn like(text: &str, pattern: &str) -> bool {
    let text = text.to_ascii_lowercase();
    let parts: Vec<String> = pattern
        .to_ascii_lowercase()
        .split('*')
        .map(str::to_string)
        .collect();
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            if !text.starts_with(part.as_str()) {
                return false;
            }
            pos = part.len();
        } else if i == parts.len() - 1 {
            return text.len() >= pos + part.len() && text.ends_with(part.as_str());
        } else {
            match text[pos..].find(part.as_str()) {
                Some(at) => pos += at + part.len(),
                None => return false,
            }
        }
    }
    pos == text.len()
}

fn log_excerpt(path: &str, text: &str) -> Evidence {
    Evidence {
        path: Some(path.to_string()),
        sha256: None,
        excerpt: Some(text.to_string()),
    }
}

/// The `Set-*VirtualDirectory ... Url ... <tag>...</tag>` shape of CVE-2021-27065 in ECP logs.
fn has_vdir_script(line: &str) -> bool {
    let Some(set) = line.find("Set-") else {
        return false;
    };
    let rest = &line[set..];
    let Some(vd) = rest.find("VirtualDirectory") else {
        return false;
    };
    let after = &rest[vd..];
    let Some(url) = after.find("Url") else {
        return false;
    };
    let tail = &after[url..];
    let opens = tail
        .match_indices('<')
        .any(|(i, _)| tail[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic()));
    opens && tail.contains("</")
}

type Found = BTreeMap<(String, String), Vec<Evidence>>;

fn add(found: &mut Found, cve: &str, kind: &str, e: Evidence) {
    found
        .entry((cve.to_string(), kind.to_string()))
        .or_default()
        .push(e);
}

fn ioc_scan(s: &HostState, now: Timestamp) -> IocScanAnswer {
    let mut found: Found = BTreeMap::new();
    let http_proxy = format!("{INSTALL_PATH}Logging\\HttpProxy\\");
    for l in &s.log_lines {
        if l.path.starts_with(&http_proxy) && l.text.contains("ServerInfo~") {
            let cols: Vec<&str> = l.text.split(',').collect();
            if cols.len() == HTTPPROXY_COLUMNS {
                let anchor = cols[ANCHOR_COLUMN];
                if like(anchor, "ServerInfo~*/*")
                    && !like(anchor, "ServerInfo~*/autodiscover*")
                    && !like(anchor, "ServerInfo~localhost*/*")
                {
                    add(
                        &mut found,
                        "CVE-2021-26855",
                        "ssrf_request",
                        log_excerpt(&l.path, &l.text),
                    );
                }
                if l.path.starts_with(&format!("{http_proxy}Ecp\\"))
                    && like(anchor, "ServerInfo~*/*Reset*VirtualDirectory#")
                    && cols[STATUS_COLUMN] == "200"
                {
                    add(
                        &mut found,
                        "CVE-2021-27065",
                        "ecp_reset_vdir",
                        log_excerpt(&l.path, &l.text),
                    );
                }
            }
        }
        if l.path
            .starts_with(&format!("{INSTALL_PATH}Logging\\OABGeneratorLog\\"))
            && let Some(rest) = l.text.split("Download failed and temporary file ").nth(1)
            && let Some(file) = rest.split(" needs to be removed").next()
            && !file.starts_with(&format!("'{INSTALL_PATH}ClientAccess\\OAB"))
        {
            add(
                &mut found,
                "CVE-2021-26858",
                "oab_download_failed",
                log_excerpt(&l.path, &l.text),
            );
        }
        if l.path
            .starts_with(&format!("{INSTALL_PATH}Logging\\ECP\\Server\\"))
            && has_vdir_script(&l.text)
        {
            add(
                &mut found,
                "CVE-2021-27065",
                "ecp_vdir_script",
                log_excerpt(&l.path, &l.text),
            );
        }
    }
    for e in &s.events {
        if e.provider == "MSExchange Unified Messaging"
            && e.level == 2
            && e.message.contains("System.InvalidCastException")
        {
            add(
                &mut found,
                "CVE-2021-26857",
                "um_invalid_cast",
                Evidence {
                    path: None,
                    sha256: None,
                    excerpt: Some(e.message.clone()),
                },
            );
        }
    }
    let any_cve = !found.is_empty();
    for f in &s.files {
        let lower = f.path.to_ascii_lowercase();
        let evidence = || Evidence {
            path: Some(f.path.clone()),
            sha256: Some(f.sha256.clone()),
            excerpt: None,
        };
        let in_web_dir = lower.contains("\\frontend\\httpproxy\\owa\\auth\\")
            || lower.contains("\\frontend\\httpproxy\\ecp\\auth\\")
            || lower.contains("\\inetpub\\wwwroot\\aspnet_client\\");
        if in_web_dir && lower.ends_with(".aspx") {
            add(&mut found, "other", "web_shell", evidence());
        }
        // Test-ProxyLogon looks for these only once something above was found.
        let file_name = lower.rsplit('\\').next().unwrap_or_default();
        let in_dump_dir =
            lower.starts_with("c:\\root\\") || lower.starts_with("c:\\windows\\temp\\");
        if any_cve && in_dump_dir && like(file_name, "lsass*dmp") {
            add(&mut found, "other", "lsass_dump", evidence());
        }
        let archive = [".7z", ".zip", ".rar"].iter().any(|x| lower.ends_with(x));
        if any_cve && lower.starts_with("c:\\programdata\\") && archive {
            add(&mut found, "other", "suspicious_archive", evidence());
        }
    }
    let age = u64::try_from(now.duration_since(s.logs_since).as_hours() / 24).unwrap_or(0);
    let log_age_days = [
        "OABGeneratorLog",
        "ECP\\Server",
        "HttpProxy\\Autodiscover",
        "HttpProxy\\Eas",
        "HttpProxy\\Ecp",
        "HttpProxy\\Ews",
        "HttpProxy\\Mapi",
        "HttpProxy\\Oab",
        "HttpProxy\\Owa",
        "HttpProxy\\OwaCalendar",
        "HttpProxy\\PowerShell",
        "HttpProxy\\RpcHttp",
    ]
    .into_iter()
    .map(|d| (d.to_string(), age))
    .collect();
    let findings: Vec<IocFinding> = found
        .into_iter()
        .map(|((cve, kind), evidence)| IocFinding {
            cve,
            kind,
            evidence,
        })
        .collect();
    IocScanAnswer {
        compromised: !findings.is_empty(),
        findings,
        log_age_days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_powershell_wildcards() {
        assert!(like(
            "ServerInfo~a]@ex01.contoso.com:444/ecp/x",
            "ServerInfo~*/*"
        ));
        assert!(
            !like("ServerInfo~ex01/autodiscover/x", "ServerInfo~*/*")
                || like(
                    "ServerInfo~ex01/autodiscover/x",
                    "ServerInfo~*/autodiscover*"
                )
        );
        assert!(like(
            "ServerInfo~a]@x:444/ecp/DDI/DDIService.svc/SetObject?ResetOAbVirtualDirectory#",
            "ServerInfo~*/*Reset*VirtualDirectory#"
        ));
        assert!(!like("abc", "abd*"));
        assert!(like("lsass.dmp", "lsass*dmp"));
        assert!(!like("lsass.dmp.txt", "lsass*dmp"));
    }

    #[test]
    fn detects_script_tags_in_vdir_urls() {
        assert!(has_vdir_script(
            "Set-OabVirtualDirectory.ExternalUrl='http://f/<script language=\"JScript\" runat=\"server\">x</script>'"
        ));
        assert!(!has_vdir_script(
            "Set-OabVirtualDirectory.ExternalUrl='https://mail.contoso.com/OAB'"
        ));
    }
}
