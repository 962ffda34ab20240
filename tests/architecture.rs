//! Architecture checks that read the source tree: no module cycle in any crate (between the
//! top-level modules of each crate's `src/`), and the engine's manifest keeps the binary's
//! dependencies out, and ARCHITECTURE.md's code map names every module file.

#![allow(clippy::unwrap_used)] // A test: a missing file is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The top-level module a file of `src` belongs to (`src/a.rs` and `src/a/b.rs` are `a`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_string())
}

/// `crate::name` references in code (comments and doc comments skipped).
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String =
                after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let before = rest[..at].chars().last();
            // `steward_runtime::...` and `$crate` are not this crate's own paths.
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            {
                names.insert(name);
            }
            rest = after;
        }
        // `use crate::{a, b::C}` form.
        if let Some(at) = code.find("crate::{") {
            let inner = &code[at + "crate::{".len()..];
            for part in inner.split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
                    names.insert(name);
                }
            }
        }
    }
    names
}

fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let Some(module) = top_module(src, &file) else { continue };
        let text = fs::read_to_string(&file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        for target in crate_references(&text) {
            if target != module {
                edges.insert(target);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if any, as the list of modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_module_cycle() {
    let crates = workspace().join("crates");
    let mut checked = 0;
    for entry in fs::read_dir(&crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = module_graph(&src);
        assert!(graph.len() > 1 || src.ends_with("sim/src"), "{} has modules", src.display());
        if let Some(cycle) = find_cycle(&graph) {
            panic!("module cycle in {}: {}", src.display(), cycle.join(" -> "));
        }
        checked += 1;
    }
    assert!(checked >= 6, "expected the six crates, checked {checked}");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(4));
    let refs = crate_references(
        "use crate::{alpha, beta::Gamma};\nlet x = crate::delta::f(); // crate::zeta",
    );
    assert_eq!(refs, ["alpha", "beta", "delta"].map(String::from).into());
}

#[test]
fn the_engine_manifest_keeps_binary_dependencies_out() {
    let manifest = fs::read_to_string(workspace().join("crates/runtime/Cargo.toml")).unwrap();
    let dependencies =
        manifest.split("[dependencies]").nth(1).and_then(|rest| rest.split("\n[").next()).unwrap();
    for forbidden in
        ["axum", "tower-http", "clap", "indicatif", "tracing-subscriber", "anyhow", "toml"]
    {
        let listed = dependencies.lines().any(|line| {
            line.trim_start().starts_with(&format!("{forbidden} "))
                || line.trim_start().starts_with(&format!("{forbidden}."))
        });
        assert!(!listed, "steward-runtime depends on {forbidden}");
    }
    for optional in ["hyper", "prometheus-client"] {
        let line = dependencies
            .lines()
            .find(|line| line.trim_start().starts_with(optional))
            .unwrap_or_else(|| panic!("{optional} is a dependency of the engine"));
        assert!(line.contains("optional = true"), "{optional} must sit behind a feature: {line}");
    }
}

/// The name ARCHITECTURE.md must mention for a module file: its stem, or its folder's name
/// for `mod.rs`; `lib.rs` and `main.rs` are the crates themselves.
fn module_name(file: &Path) -> Option<String> {
    let stem = file.file_stem()?.to_str()?;
    match stem {
        "lib" | "main" => None,
        "mod" => Some(file.parent()?.file_name()?.to_str()?.to_string()),
        _ => Some(stem.to_string()),
    }
}

#[test]
fn the_code_map_names_every_module() {
    let architecture = fs::read_to_string(workspace().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for entry in fs::read_dir(workspace().join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        for file in rust_files(&src) {
            let Some(name) = module_name(&file) else { continue };
            checked += 1;
            if !architecture.contains(&name) {
                missing.push(file.strip_prefix(workspace()).unwrap().display().to_string());
            }
        }
    }
    assert!(checked > 40, "expected the workspace's modules, found {checked}");
    assert!(missing.is_empty(), "ARCHITECTURE.md's code map does not name: {missing:?}");
}
