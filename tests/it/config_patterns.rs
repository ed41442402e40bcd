//! Host pattern semantics as properties over generated inventories, and loaders fed random
//! input never panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use salve::model::{Group, Host, HostPattern, HostSettings, Inventory, Vars};

const HOSTS: usize = 6;
const GROUPS: [&str; 3] = ["g0", "g1", "g2"];

/// An inventory of hosts h0..h5 where `member[g][h]` puts host h directly in group g.
fn inventory(member: &[Vec<bool>]) -> Inventory {
    let mut groups = BTreeMap::new();
    let mut hosts: Vec<Host> = (0..HOSTS)
        .map(|h| Host {
            name: format!("h{h}"),
            groups: vec!["all".into()],
            tenant: None,
            vars: Default::default(),
            settings: HostSettings::read(&format!("h{h}"), &Vars::new()).unwrap(),
            location: None,
        })
        .collect();
    for (g, name) in GROUPS.iter().enumerate() {
        let members: Vec<String> = (0..HOSTS)
            .filter(|h| member[g][*h])
            .map(|h| format!("h{h}"))
            .collect();
        for h in (0..HOSTS).filter(|h| member[g][*h]) {
            hosts[h].groups.push(name.to_string());
        }
        groups.insert(
            name.to_string(),
            Group {
                name: name.to_string(),
                children: vec![],
                hosts: members,
                vars: Default::default(),
                tenant: None,
                location: None,
            },
        );
    }
    Inventory::new(hosts, groups, vec![], String::new())
}

fn names(inv: &Inventory, pattern: &str) -> Vec<String> {
    let p = HostPattern::parse(pattern).unwrap();
    inv.select(&p)
        .unwrap()
        .into_iter()
        .map(|h| h.name.clone())
        .collect()
}

fn term() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..HOSTS).prop_map(|h| format!("h{h}")),
        proptest::sample::select(GROUPS.to_vec()).prop_map(String::from),
        Just("all".to_string()),
        Just("h*".to_string()),
        Just("~h[0-2]".to_string()),
        Just("g?".to_string()),
    ]
}

fn membership() -> impl Strategy<Value = Vec<Vec<bool>>> {
    proptest::collection::vec(
        proptest::collection::vec(any::<bool>(), HOSTS),
        GROUPS.len(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn pattern_algebra(member in membership(), a in term(), b in term()) {
        let inv = inventory(&member);
        let sa = names(&inv, &a);
        let sb = names(&inv, &b);
        let none = names(&inv, &format!("{a}:!{a}"));
        prop_assert!(none.is_empty());
        prop_assert_eq!(names(&inv, &format!("{a}:{b}")), names(&inv, &format!("{b}:{a}")));
        prop_assert_eq!(names(&inv, &format!("{a},{b}")), names(&inv, &format!("{a}:{b}")));
        prop_assert_eq!(names(&inv, &format!("all:&{a}")), sa.clone());
        let minus = names(&inv, &format!("{a}:!{b}"));
        let subset = minus.iter().all(|h| sa.contains(h) && !sb.contains(h));
        prop_assert!(subset);
        // Ansible's order: exclusions and intersections apply after unions wherever they stand.
        prop_assert_eq!(names(&inv, &format!("!{b}:{a}")), minus);
        let both = names(&inv, &format!("{a}:&{b}"));
        prop_assert_eq!(both, sa.iter().filter(|h| sb.contains(h)).cloned().collect::<Vec<_>>());
        // Results keep inventory order and hold each host once.
        let union = names(&inv, &format!("{a}:{b}:{a}"));
        let mut sorted = union.clone();
        sorted.sort_by_key(|h| h[1..].parse::<usize>().unwrap());
        sorted.dedup();
        prop_assert_eq!(union, sorted);
    }
}

#[test]
fn unknown_names_suggest_and_files_list_hosts() {
    let inv = inventory(&[vec![true; HOSTS], vec![false; HOSTS], vec![false; HOSTS]]);
    let e = inv.select(&HostPattern::parse("g00").unwrap()).unwrap_err();
    assert!(e.to_string().contains("did you mean `g0`?"), "{e}");
    assert!(HostPattern::parse("").is_err());
    assert!(HostPattern::parse("a:&").is_err());
    assert!(HostPattern::parse("~[").is_err());
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("hosts.txt");
    std::fs::write(&list, "# canaries\nh4\n\nh1\n").unwrap();
    assert_eq!(names(&inv, &format!("@{}", list.display())), ["h1", "h4"]);
    assert_eq!(names(&inv, "!h0"), ["h1", "h2", "h3", "h4", "h5"]);
}

/// Random JSON (which is YAML) over the playbook and inventory vocabulary.
fn yamlish() -> impl Strategy<Value = serde_json::Value> {
    let words = proptest::sample::select(vec![
        "hosts",
        "tasks",
        "handlers",
        "vars",
        "children",
        "name",
        "when",
        "loop",
        "notify",
        "serial",
        "debug",
        "powershell",
        "set_fact",
        "register",
        "timeout",
        "all",
        "ex[01:03]",
        "ex[",
        "{{ x }}",
        "{{",
        "a ==",
        "30%",
        "salve_tenant",
        "ansible_password",
        "retries",
        "until",
        "g1:&g2:!x",
        "~(",
        "@/nonexistent",
    ]);
    let leaf = prop_oneof![
        words
            .clone()
            .prop_map(|w| serde_json::Value::String(w.to_string())),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    leaf.prop_recursive(4, 40, 5, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(words.clone().prop_map(String::from), inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn loaders_never_panic(tree in yamlish(), raw in "[a-z0-9:\\-\\[\\]{}&*!|>'\"#%@~,? \n]{0,120}") {
        let dir = tempfile::tempdir().unwrap();
        let inv_path = dir.path().join("inv.yml");
        std::fs::write(&inv_path, "all:\n  children:\n    g1: {hosts: {ex01: }}\n    g2: {hosts: {ex01: }}\n").unwrap();
        let inv = salve::config::inventory::load(std::slice::from_ref(&inv_path)).unwrap().value;
        for text in [tree.to_string(), serde_json::Value::Array(vec![tree.clone()]).to_string(), raw] {
            let p = dir.path().join("x.yml");
            std::fs::write(&p, &text).unwrap();
            let _ = salve::config::inventory::load(std::slice::from_ref(&p));
            let _ = salve::config::playbook::load(&p, &inv, &Vars::new());
        }
    }
}
