//! The shell's layout, checked: every module of `src/` imports only what its
//! `//!` page (and `lib.rs`'s `# Layout`) allows, and the allowed imports
//! have no circle. A reference counts wherever it appears in code (a `use`,
//! a path inside a function, a grouped `use crate::{a, b}`); doc comments
//! and other comments do not import anything and are skipped.
//!
//! Two levels: the crate's top-level modules (`crate::x`), and the files
//! inside a folder (`super::x`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may import from the crate.
#[rustfmt::skip]
const CRATE: &[(&str, &[&str])] = &[
    // 1. The wire contract, pure.
    ("subjects", &[]),
    ("headers", &[]),
    ("settings", &[]),
    // Beside them, a leaf every layer may record into: the metrics.
    ("telemetry", &[]),
    ("retry", &[]),
    ("wire", &["subjects", "headers"]),
    ("outbox", &["subjects", "headers", "wire"]),
    // 2. The servers.
    ("store", &["settings", "outbox", "subjects", "telemetry"]),
    ("bus", &["settings", "outbox", "subjects", "headers", "telemetry", "retry"]),
    // 3. The order actors.
    ("order", &["store", "bus", "outbox", "subjects", "headers", "wire", "settings", "telemetry", "retry"]),
    // 3. Above them: an order's record beyond the live store.
    ("archive", &["order", "store", "bus", "settings", "subjects", "headers", "wire", "telemetry"]),
    // 4. The two ways in.
    ("intake", &["order", "store", "bus", "settings", "subjects", "headers", "wire", "telemetry", "retry"]),
    ("api", &["order", "archive", "store", "bus", "settings", "subjects", "headers", "wire"]),
    ("http", &["api", "order", "store", "bus", "settings", "subjects", "headers", "wire", "telemetry"]),
    // 5. The entry point.
    ("app", &["api", "http", "intake", "order", "archive", "bus", "store", "settings", "telemetry", "retry"]),
    // Beside the layers: the operator's command line, a NATS client.
    ("cli", &["subjects", "headers", "wire", "settings"]),
];

/// A module (or file) and what it may import.
type Rule = (&'static str, &'static [&'static str]);

/// What each file inside a folder may import from its siblings.
const FOLDERS: &[(&str, &[Rule])] = &[
    (
        "store",
        &[
            ("keys", &[]),
            ("indexes", &["keys"]),
            ("personal", &["keys"]),
            ("sentinel", &[]),
            ("reconnects", &[]),
            ("fence", &["keys"]),
            ("paging", &["keys"]),
            ("timers", &["keys"]),
            ("backfill", &["keys"]),
            ("archive", &["keys", "personal"]),
            ("configs", &["indexes", "keys"]),
            ("snapshots", &["configs", "indexes", "keys", "personal"]),
        ],
    ),
    (
        "order",
        &[
            ("messages", &[]),
            ("plugins", &["messages"]),
            ("timers", &["messages"]),
            ("actor", &["messages", "plugins"]),
            ("router", &["messages", "actor"]),
        ],
    ),
    (
        "intake",
        &[
            ("consumers", &[]),
            ("ack", &[]),
            ("pull", &["ack"]),
            ("lanes", &["consumers", "pull"]),
        ],
    ),
    (
        "api",
        &[
            ("replay", &[]),
            ("query", &[]),
            ("config", &["replay"]),
            ("service", &["config", "query"]),
        ],
    ),
    (
        "http",
        &[("throughput", &[]), ("dashboard", &["throughput"])],
    ),
    (
        "archive",
        &[("record", &[]), ("sweep", &["record"]), ("erase", &[])],
    ),
    (
        "cli",
        &[
            ("args", &[]),
            ("failure", &[]),
            ("render", &[]),
            ("asof", &[]),
            ("narrow", &[]),
            ("client", &["args", "failure"]),
            ("watch", &["args", "client", "failure", "narrow", "render"]),
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (line comments only: the crate
/// has no block comments).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("readable file")
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        // A whole path segment: `crate::` not preceded by an identifier.
        let before = rest[..i].chars().last();
        let tail = &rest[i + prefix.len()..];
        rest = tail;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = tail.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    out.push(name);
                }
            }
            continue;
        }
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if end > 0 {
            out.push(&tail[..end]);
        }
    }
    out
}

/// The module a file belongs to (its first path component under `src/`,
/// without `.rs`), and for a file in a folder its own name there.
fn place(path: &Path) -> Option<(String, Option<String>)> {
    let rel = path.strip_prefix(src()).ok()?;
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    match parts.as_slice() {
        [file] if file == "lib" || file == "main" => None,
        [file] => Some((file.clone(), None)),
        [dir, ..] if dir == "bin" => None,
        [dir, file] if file == "mod" => Some((dir.clone(), None)),
        [dir, file, ..] => Some((dir.clone(), Some(file.clone()))),
        _ => None,
    }
}

fn table(rows: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
    rows.iter()
        .map(|(m, deps)| {
            (
                (*m).to_owned(),
                deps.iter().map(|d| (*d).to_owned()).collect(),
            )
        })
        .collect()
}

/// Fails with the circle, if the allowed edges have one.
fn assert_acyclic(what: &str, edges: &BTreeMap<String, BTreeSet<String>>) {
    fn visit(
        what: &str,
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == node) {
            panic!("{what}: import circle {:?} -> {node}", &path[i..]);
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            visit(what, next, edges, path, done);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(what, node, edges, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_allowed_imports_have_no_circle() {
    assert_acyclic("crate", &table(CRATE));
    for (folder, rows) in FOLDERS {
        assert_acyclic(folder, &table(rows));
    }
}

#[test]
fn every_module_imports_only_what_the_layout_allows() {
    let crate_rules = table(CRATE);
    let folder_rules: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> =
        FOLDERS.iter().map(|(f, rows)| (*f, table(rows))).collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for path in &files {
        let Some((module, file)) = place(path) else {
            continue;
        };
        seen.insert(module.clone());
        let Some(allowed) = crate_rules.get(&module) else {
            problems.push(format!(
                "{}: module `{module}` is not in the layout",
                path.display()
            ));
            continue;
        };
        let text = code(path);
        for target in ident_after(&text, "crate::") {
            if target != module && !allowed.contains(target) {
                problems.push(format!("{}: imports crate::{target}", path.display()));
            }
        }
        let (Some(file), Some(rules)) = (file, folder_rules.get(module.as_str())) else {
            continue;
        };
        let Some(siblings) = rules.get(&file) else {
            problems.push(format!(
                "{}: file `{file}` is not in the layout",
                path.display()
            ));
            continue;
        };
        for target in ident_after(&text, "super::") {
            if rules.contains_key(target) && target != file && !siblings.contains(target) {
                problems.push(format!("{}: imports super::{target}", path.display()));
            }
        }
    }
    for module in crate_rules.keys() {
        if !seen.contains(module) {
            problems.push(format!(
                "the layout names `{module}`, which src/ does not have"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "layout broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_every_kind_of_reference() {
    let text = "use crate::{bus, store::X};\nlet a = crate::wire::f();\nuse super::messages::Y;";
    assert_eq!(ident_after(text, "crate::"), ["bus", "store", "wire"]);
    assert_eq!(ident_after(text, "super::"), ["messages"]);
    assert!(ident_after("mycrate::x", "crate::").is_empty());
}

/// How every Redis key orderd writes begins (`src/store/keys.rs`).
const REDIS_KEY_PREFIXES: &[&str] = &[
    "orderd:backfills",
    "orderd:contact",
    "orderd:idx",
    "orderd:location",
    "orderd:order",
    "orderd:tenant",
    "orderd:timers",
];

/// No Redis client call and no Redis key outside `src/store/` (the bench,
/// in `src/bin/`, measures the raw server with keys of its own).
#[test]
fn only_the_store_talks_to_redis() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let store = src().join("store");
    let bins = src().join("bin");
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| !p.starts_with(&store) && !p.starts_with(&bins))
        .filter(|p| {
            let text = code(p);
            text.contains("redis::") || REDIS_KEY_PREFIXES.iter().any(|k| text.contains(k))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "Redis commands or key formats outside src/store/: {offenders:?}"
    );
}
