//! The nameserver's rooms depend one way only (`core/src/nameserver/mod.rs`): each module names, and calls
//! methods of [`Nameserver`](openmldb::nameserver::Nameserver) defined in, only the modules below it. This test
//! reads the sources and checks what it can check simply:
//! - paths: `use super::x`, `use super::{x, y::z}`, `super::x::` anywhere in the code (`super::super::x` and
//!   `crate::nameserver::x` too), comments left out;
//! - method calls on the nameserver: `self.f(`, `ns.f(`, `self.clone().f(`, `Self::f(`, `Nameserver::f(`, where
//!   `f` is a method of an `impl Nameserver` block of another module;
//! - `decide/` stays pure: no nameserver, no await, no coordination service or RPC.
//!
//! It is a text check, not a type check: a call through another name than `self` or `ns` is not seen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every nameserver module with its layer: a module may name only modules of a lower layer; the bottom ones
/// (layer 0) may name each other.
const LAYERS: &[(&str, u32)] = &[
    ("codes", 0),
    ("decide", 0),
    ("meta", 0),
    ("opbook", 0),
    ("ops", 0),
    ("rpc", 0),
    ("state", 1),
    ("opstore", 2),
    ("tasks", 3),
    ("engine", 4),
    ("failover", 5),
    ("manual", 6),
    ("server", 7),
];

/// What `mod.rs` re-exports, by the module that defines it.
const REEXPORTS: &[(&str, &str)] =
    &[("Nameserver", "state"), ("NameserverConfig", "state"), ("NameserverHandle", "server")];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Whether `from` may name `to`; an unknown name (a glob, an item of `mod.rs`) may not be named.
fn may_use(from: &str, to: &str) -> bool {
    match (layer(from), layer(to)) {
        (Some(f), Some(t)) => from == to || t < f || (f == 0 && t == 0),
        _ => false,
    }
}

/// One source file of the nameserver.
struct Source {
    /// The nameserver module it belongs to (`decide/*.rs` all to `decide`).
    module: String,
    path: PathBuf,
    /// Its code, comments left out.
    code: String,
    /// How many `super::` lead from the file's own module to `nameserver` (1, or 2 in `decide/x.rs`).
    depth: usize,
}

/// The source files of the nameserver but `mod.rs`.
fn sources() -> Vec<Source> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/nameserver");
    let mut out = Vec::new();
    let mut visit = |path: PathBuf, module: String, depth: usize| {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push(Source { module, path, code: code_only(&text), depth });
    };
    for entry in std::fs::read_dir(&dir).expect("src/nameserver") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("file name").to_string();
        if path.is_dir() {
            assert_eq!(name, "decide", "a new directory in src/nameserver needs a layer here");
            for sub in std::fs::read_dir(&path).expect("decide") {
                let sub = sub.expect("dir entry").path();
                let depth = if sub.ends_with("mod.rs") { 1 } else { 2 };
                visit(sub, "decide".into(), depth);
            }
        } else if name != "mod.rs" {
            let module = name.strip_suffix(".rs").expect("a .rs file").to_string();
            assert!(layer(&module).is_some(), "module {module} has no layer in LAYERS");
            visit(path, module, 1);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The text with line comments (doc comments included) blanked out; string literals are kept.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut escaped = false;
        let mut cut = line.len();
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            if in_str {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
            } else if b == b'"' {
                in_str = true;
            } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
                cut = i;
                break;
            }
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level names of a `{a, b::c, d as e}` group that starts right after `{`.
fn group_names(s: &str) -> Vec<String> {
    let mut depth = 0;
    let mut names = Vec::new();
    let mut at_start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_start = true,
            c if at_start && depth == 0 && !c.is_whitespace() => {
                names.push(ident_at(&s[i..]).to_string());
                at_start = false;
            }
            _ => {}
        }
    }
    names
}

/// The nameserver modules a source names through `prefix` (`super::`, `crate::nameserver::`, ...).
fn named_through(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        // A longer `super::` chain is another prefix's.
        if prefix.starts_with("super::") && code[..at].ends_with("super::") {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            out.extend(group_names(group));
        } else {
            out.push(ident_at(rest).to_string());
        }
    }
    out.retain(|n| n != "super" && n != "self");
    out.into_iter().map(|n| REEXPORTS.iter().find(|(item, _)| *item == n).map_or(n, |(_, m)| m.to_string())).collect()
}

/// The methods each module defines in its `impl Nameserver` blocks.
fn nameserver_methods(sources: &[Source]) -> BTreeMap<String, String> {
    let mut defined = BTreeMap::new();
    for Source { module, code, .. } in sources {
        let mut inside = false;
        for line in code.lines() {
            if line.starts_with("impl Nameserver {") {
                inside = true;
            } else if inside && line == "}" {
                inside = false;
            } else if inside
                && line.starts_with("    ")
                && !line.starts_with("     ")
                && let Some(at) = line.find("fn ")
            {
                let name = ident_at(&line[at + 3..]).to_string();
                let before = defined.insert(name.clone(), module.clone());
                assert!(before.is_none(), "{name} defined twice");
            }
        }
    }
    defined
}

/// Every `(callee, line)` of a method call on the nameserver in the `impl Nameserver` blocks of `code` (elsewhere
/// `self` is something else).
fn nameserver_calls(code: &str) -> Vec<(String, usize)> {
    const RECEIVERS: &[&str] = &["self.", "ns.", "self.clone().", "ns.clone().", "Self::", "Nameserver::"];
    let mut out = Vec::new();
    let mut inside = false;
    for (n, line) in code.lines().enumerate() {
        if line.starts_with("impl Nameserver {") {
            inside = true;
        } else if line == "}" {
            inside = false;
        }
        if !inside {
            continue;
        }
        for receiver in RECEIVERS {
            for (at, _) in line.match_indices(receiver) {
                let word_start = at == 0 || !line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_');
                let rest = &line[at + receiver.len()..];
                let name = ident_at(rest);
                if word_start && !name.is_empty() && rest[name.len()..].starts_with('(') {
                    out.push((name.to_string(), n + 1));
                }
            }
        }
    }
    out
}

#[test]
fn modules_name_only_lower_modules() {
    let sources = sources();
    let mut wrong = Vec::new();
    let mut seen = 0;
    for Source { module, path, code, depth } in &sources {
        // A `mod tests` at the end of a file is one `super::` deeper.
        let (outer, tests) = code.split_at(code.find("\nmod tests {").unwrap_or(code.len()));
        let mut named = named_through(code, "crate::nameserver::");
        named.extend(named_through(outer, &"super::".repeat(*depth)));
        named.extend(named_through(tests, &"super::".repeat(depth + 1)));
        for to in named {
            seen += 1;
            if !may_use(module, &to) {
                wrong.push(format!("{}: {module} names {to:?}", path.display()));
            }
        }
    }
    assert!(seen > 40, "only {seen} paths found: the scan is broken");
    assert!(wrong.is_empty(), "upward dependencies:\n{}", wrong.join("\n"));
}

#[test]
fn modules_call_only_lower_modules() {
    let sources = sources();
    let defined = nameserver_methods(&sources);
    for (method, module) in
        [("is_healthy", "state"), ("create_op", "opstore"), ("run_task", "tasks"), ("queue_worker", "engine")]
    {
        assert_eq!(defined.get(method).map(String::as_str), Some(module), "{method}: the scan is broken");
    }
    let mut wrong = Vec::new();
    let mut across = 0;
    let mut starts_workers = Vec::new();
    for Source { module, path, code, .. } in &sources {
        for (callee, line) in nameserver_calls(code) {
            let Some(home) = defined.get(&callee) else { continue };
            if home != module {
                across += 1;
            }
            if callee == "queue_worker" {
                starts_workers.push(module.clone());
            }
            if !may_use(module, home) {
                wrong.push(format!("{}:{line}: {module} calls {callee} of {home}", path.display()));
            }
        }
    }
    assert!(across > 50, "only {across} calls across modules found: the scan is broken");
    assert!(wrong.is_empty(), "upward calls:\n{}", wrong.join("\n"));
    assert_eq!(starts_workers, ["server"], "only the server starts the engine's workers");
}

#[test]
fn decisions_stay_pure() {
    const FORBIDDEN: &[&str] = &[
        "Nameserver",
        ".await",
        "async ",
        "crate::coord",
        "crate::rpc",
        "tokio::spawn",
        "tokio::time::sleep",
        "Mutex",
    ];
    let mut wrong = Vec::new();
    for Source { path, code, .. } in sources().iter().filter(|s| s.module == "decide") {
        for word in FORBIDDEN {
            if code.contains(word) {
                wrong.push(format!("{}: uses {word}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "decide/ must stay pure:\n{}", wrong.join("\n"));
}
