//! The claims `src/lib.rs` makes about the crate's shape, checked against the
//! source: no two modules import each other in a circle (`use crate::…`,
//! `crate::…` paths and `super::…` paths between files, test code included),
//! and the module table in the crate docs lists exactly the modules there are.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/` as its module path (`ipv4::udp`, `""` for lib.rs).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                // src/bin holds the `xsknet` command's own modules, not the library's.
                if p.file_name().is_some_and(|n| n == "bin") && p.parent() == Some(dir) {
                    continue;
                }
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .filter(|p| p.file_name().unwrap() != "main.rs")
        .map(|p| {
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
                parts.pop();
            }
            (parts.join("::"), p)
        })
        .collect()
}

/// Expands `a::{b, c::{d, self}}` into `a::b`, `a::c::d`, `a::c`.
fn expand(path: &str, out: &mut Vec<String>) {
    let path = path.trim();
    let Some(open) = path.find('{') else {
        out.push(path.trim_end_matches("::self").to_string());
        return;
    };
    let prefix = &path[..open];
    let inner = &path[open + 1..path.rfind('}').unwrap()];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                let part = inner[start..i].trim();
                if !part.is_empty() {
                    expand(&format!("{prefix}{part}"), out);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let part = inner[start..].trim();
    if !part.is_empty() {
        expand(&format!("{prefix}{part}"), out);
    }
}

/// The paths a file names: `use` declarations (with their braces) and
/// `crate::`/`super::` paths written inline.
fn referenced_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut rest = code.as_str();
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        rest = &rest[i + 4..];
        if !(before.is_empty() || before.ends_with(|c: char| c.is_whitespace() || c == ';' || c == '{')) {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        let decl: String = rest[..end].split_whitespace().collect();
        if decl.starts_with("crate::") || decl.starts_with("super::") {
            expand(&decl, &mut out);
        }
    }
    for start in ["crate::", "super::"] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(start) {
            let prev = rest[..i].chars().last();
            rest = &rest[i..];
            let len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            if !prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                out.push(rest[..len].trim_end_matches(':').to_string());
            }
            rest = &rest[len.max(1)..];
        }
    }
    out
}

/// The module a path names: its longest prefix that is a module.
fn resolve(from: &str, path: &str, mods: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut parts: Vec<&str> = from.split("::").filter(|s| !s.is_empty()).collect();
    let mut segs = path.split("::").peekable();
    match segs.peek() {
        Some(&"crate") => {
            parts.clear();
            segs.next();
        }
        Some(&"super") => {
            // `super` of a file module is its parent; inline `mod tests` blocks
            // are part of the file, so one `super` there is the file itself.
            while segs.peek() == Some(&"super") {
                segs.next();
                parts.pop();
            }
        }
        _ => return None,
    }
    let mut best = None;
    for s in segs {
        parts.push(s);
        let m = parts.join("::");
        if mods.contains_key(&m) {
            best = Some(m);
        }
    }
    best
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let mut edges = BTreeMap::new();
    for (m, file) in &mods {
        let text = std::fs::read_to_string(file).unwrap();
        let mut to = BTreeSet::new();
        for p in referenced_paths(&text) {
            // Inside `mod tests`, `super::` is the file's own module.
            let p2 = p.strip_prefix("super::").map(|r| format!("crate::{m}::{r}"));
            for candidate in [Some(p.clone()), p2].into_iter().flatten() {
                if let Some(target) = resolve(m, &candidate, &mods) {
                    // A module naming its own child or itself is not an edge.
                    if target != *m && !target.starts_with(&format!("{m}::")) && !m.is_empty() {
                        to.insert(target);
                        break;
                    }
                }
            }
        }
        edges.insert(m.clone(), to);
    }
    edges
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn dfs(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = dfs(m, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = dfs(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_form_a_cycle() {
    let edges = graph();
    assert!(edges.len() > 20, "found the modules: {:?}", edges.keys());
    // Edges we know exist, so the parser is seen to find them.
    for (from, to) in [("softirq", "ipv4::ip_input"), ("ipv4::udp", "ipv4::ip_output"), ("stack", "softirq")] {
        assert!(edges[from].contains(to), "{from} -> {to} not found: {:?}", edges[from]);
    }
    if let Some(cycle) = find_cycle(&edges) {
        panic!("module cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut e: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    e.entry("a".into()).or_default().insert("b".into());
    e.entry("b".into()).or_default().insert("c".into());
    e.entry("c".into()).or_default();
    assert_eq!(find_cycle(&e), None);
    e.get_mut("c").unwrap().insert("a".into());
    assert_eq!(find_cycle(&e), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let mut out = Vec::new();
    expand("crate::wire::{ethernet::{self, ethertype}, udp}", &mut out);
    assert_eq!(out, ["crate::wire::ethernet", "crate::wire::ethernet::ethertype", "crate::wire::udp"]);
}

#[test]
fn the_module_table_in_lib_rs_lists_every_module() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .filter(|m| *m != "testing")
        .collect();
    let table: BTreeSet<&str> = lib
        .lines()
        .filter(|l| l.starts_with("//! |"))
        .flat_map(|l| l.split("[`").skip(1).map(|s| s.split('`').next().unwrap()))
        .collect();
    assert_eq!(declared, table, "lib.rs: `pub mod` declarations vs the module table");
}
