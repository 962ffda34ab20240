//! The pure crates stay pure: their manifests name no runtime, I/O or randomness dependency, and
//! their sources never read the clock or draw random numbers (clippy's `disallowed-methods`
//! covers the calls it knows; this catches the dependencies and the obvious spellings).

use std::path::Path;

const PURE_CRATES: [&str; 3] = ["proto", "state-machine", "planner"];
const FORBIDDEN_DEPENDENCIES: [&str; 8] =
    ["tokio", "rusqlite", "reqwest", "axum", "rand", "getrandom", "uuid", "hyper"];
const FORBIDDEN_CALLS: [&str; 5] =
    ["Utc::now", "Instant::now", "SystemTime::now", "thread_rng", "std::fs::"];

fn crates_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".."))
}

fn dependency_names(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once('=') {
            names.push(name.trim().trim_end_matches(".workspace").to_string());
        }
    }
    names
}

#[test]
fn pure_crates_depend_on_no_io_runtime_or_randomness() {
    for krate in PURE_CRATES {
        let manifest = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("read {krate}/Cargo.toml: {e}"));
        let names = dependency_names(&manifest);
        assert!(names.iter().any(|n| n == "serde"), "{krate}: parsed no dependencies: {names:?}");
        for forbidden in FORBIDDEN_DEPENDENCIES {
            assert!(!names.iter().any(|n| n == forbidden), "{krate} depends on {forbidden}");
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn pure_sources_never_read_the_clock_or_randomness() {
    let mut checked = 0;
    for krate in PURE_CRATES {
        let mut files = Vec::new();
        rust_files(&crates_dir().join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for call in FORBIDDEN_CALLS {
                assert!(!text.contains(call), "{} uses {call}", file.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "found only {checked} source files");
}
