//! The module map of ARCHITECTURE.md, section 2, checked against the code:
//! every `crate::…` path in a crate's `src/` (tests aside) is an edge from its
//! file's module to another; the engine's modules (`src/`) use only the engine
//! modules their row allows, every engine module has a row, and in no crate of
//! the workspace do two modules use each other, directly or through others.
//! (The engine cannot use the command line, the harness or the thumbnail job:
//! they are other crates, which depend on it.)
#![cfg(not(feature = "loom"))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Engine modules, each with the engine modules it may use.
const ENGINE: &[(&str, &[&str])] = &[
    ("setting", &[]),
    ("sync", &[]),
    ("task", &["setting"]),
    ("admission", &["sync", "setting"]),
    ("scheduler", &["sync", "setting"]),
    ("processor", &["sync", "setting", "task"]),
    ("retry", &["sync", "setting", "processor"]),
    ("idempotency", &["sync", "setting", "task", "processor"]),
    ("metrics", &["setting", "task", "processor", "idempotency"]),
    ("error", &["setting", "processor", "idempotency"]),
    (
        "config",
        &[
            "setting",
            "admission",
            "scheduler",
            "processor",
            "retry",
            "idempotency",
            "error",
        ],
    ),
    (
        "engine",
        &[
            "setting",
            "sync",
            "task",
            "admission",
            "scheduler",
            "processor",
            "retry",
            "idempotency",
            "metrics",
            "error",
            "config",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its unit tests and comments.
fn code(text: &str) -> String {
    let text = match text
        .find("#[cfg(all(test")
        .or_else(|| text.find("#[cfg(test)]"))
    {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `crate::NAME` paths in `code`: the top-level modules it uses.
fn used(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        if i > 0
            && (code.as_bytes()[i - 1].is_ascii_alphanumeric() || code.as_bytes()[i - 1] == b'_')
        {
            continue; // `taskq_crate::` or the like
        }
        let name: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Names `src/lib.rs` re-exports at the crate root (`pub use module::{A, B}`),
/// with the module each comes from: `crate::Task` is a use of `task`.
fn root_reexports(src: &Path) -> BTreeMap<String, String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut out = BTreeMap::new();
    for stmt in code(&lib).split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_start_matches("crate::");
        let Some((module, items)) = rest.split_once("::") else {
            continue;
        };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.rsplit("::").next().unwrap().trim();
            let name = name.rsplit(" as ").next().unwrap().trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.to_string());
            }
        }
    }
    out
}

/// The `src/` folder of each crate: the engine's first.
fn crate_sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![root.join("src")];
    for name in ["thumbnail", "bench", "cli"] {
        out.push(root.join("crates").join(name).join("src"));
    }
    out
}

/// Module -> file (relative to src/) -> modules it uses, in the crate whose
/// sources are in `src`.
fn graph(src: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = src.to_path_buf();
    let reexports = root_reexports(&src);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for path in files {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        // A `tests.rs` or `tests/` beside the code is unit tests.
        if rel.ends_with("/tests.rs") || rel.contains("/tests/") {
            continue;
        }
        let uses: BTreeSet<String> = used(&code(&std::fs::read_to_string(&path).unwrap()))
            .into_iter()
            .map(|m| reexports.get(&m).cloned().unwrap_or(m))
            .filter(|m| *m != module)
            .collect();
        graph.entry(module).or_default().insert(rel, uses);
    }
    graph
}

#[test]
fn engine_modules_use_only_what_their_row_allows() {
    let graph = graph(&crate_sources()[0]);
    let engine: BTreeMap<&str, &[&str]> = ENGINE.iter().copied().collect();
    let mut wrong = Vec::new();
    for (module, files) in &graph {
        let Some(allowed) = engine.get(module.as_str()) else {
            wrong.push(format!("src/{module} has no row in the table"));
            continue;
        };
        for (file, uses) in files {
            for m in uses {
                if !allowed.contains(&m.as_str()) {
                    wrong.push(format!("src/{file} uses crate::{m}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that ARCHITECTURE.md (section 2) does not allow:\n{}",
        wrong.join("\n")
    );
    for (module, _) in ENGINE {
        assert!(graph.contains_key(*module), "no module {module} in src/");
    }
}

#[test]
fn no_two_modules_use_each_other() {
    for src in crate_sources() {
        assert!(src.is_dir(), "no crate sources at {}", src.display());
        no_cycle(&graph(&src));
    }
}

fn no_cycle(graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) {
    let edges: BTreeMap<&str, BTreeSet<&str>> = graph
        .iter()
        .map(|(m, files)| {
            let uses = files
                .values()
                .flatten()
                .map(String::as_str)
                .filter(|u| graph.contains_key(*u))
                .collect();
            (m.as_str(), uses)
        })
        .collect();
    // Depth-first search for a cycle; report the first one found.
    fn visit<'a>(
        m: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(i) = path.iter().position(|p| *p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m);
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m);
        for next in &edges[m] {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m);
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        if let Some(cycle) = visit(m, &edges, &mut Vec::new(), &mut done) {
            panic!("modules use each other: {}", cycle.join(" -> "));
        }
    }
}

/// The checks see what they should: a planted import is an edge.
#[test]
fn the_scan_finds_imports_and_skips_tests_and_comments() {
    let text = "use crate::engine::Shared;\n// crate::input\nfn f() { crate::sync::lock(); }\n\
                #[cfg(all(test, not(feature = \"loom\")))]\nmod tests { use crate::cli; }";
    let found = used(&code(text));
    assert_eq!(
        found,
        ["engine", "sync"].into_iter().map(String::from).collect()
    );
}
