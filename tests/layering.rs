//! The import layering of the library: cli → phases (and verify) → workflow → the model and its renderers (model,
//! config, pki, kubeconfig, certs, staticpods, render, preflight, …) → the host and cluster gateways →
//! the base (net, error, output, yaml). A source scan of every `crate::…` path fails on an import from a
//! lower layer into a higher one and on any cycle between top-level modules (so `config` cannot import
//! `cli`, and `pki` and `kubeconfig` cannot import each other in a circle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module's layer: a module may import modules of a later layer, and modules of its
/// own layer as long as no cycle forms. A new module must be placed here.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["phases", "verify"],
    &["workflow"],
    &[
        "certs",
        "preflight",
        "staticpods",
        "kubeconfig",
        "kubelet",
        "pki",
        "model",
        "config",
        "render",
        "patches",
        "token",
        "addons",
        "discovery",
        "status",
    ],
    &["host", "cluster", "etcd", "podnet"],
    &["net", "error", "output", "yaml"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level modules a source text refers to through `crate::` paths (code only, not comments).
fn referenced_modules(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            rest = &rest[at + "crate::".len()..];
            // `kubestrap_testbed::crate::x` does not occur; `$crate::` in macros is not ours.
            if before.ends_with('$') || before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0usize;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.extend(first_ident(&item));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 0 {
                        item.push(c);
                    }
                }
                found.extend(first_ident(&item));
            } else {
                found.extend(first_ident(rest));
            }
        }
    }
    found
}

fn first_ident(text: &str) -> Option<String> {
    let ident: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty()).then_some(ident)
}

/// Module → the modules it imports, from the files under `src`.
fn graph(sources: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in sources {
        let entry = edges.entry(module.clone()).or_default();
        for target in referenced_modules(text) {
            if target != *module {
                entry.insert(target);
            }
        }
    }
    edges
}

/// Every forbidden edge and cycle, as messages.
fn violations(sources: &[(String, String)]) -> Vec<String> {
    let edges = graph(sources);
    let mut problems = Vec::new();
    for (from, targets) in &edges {
        let Some(from_layer) = layer_of(from) else {
            problems.push(format!("module `{from}` is in no layer: add it to LAYERS"));
            continue;
        };
        for to in targets {
            match layer_of(to) {
                None => problems.push(format!("`{from}` imports `{to}`, which is in no layer")),
                Some(to_layer) if to_layer < from_layer => problems.push(format!(
                    "`{from}` (layer {from_layer}) imports `{to}` (layer {to_layer}): imports run cli → phases → workflow → model/renderers → gateways → base"
                )),
                Some(_) => {}
            }
        }
    }
    problems.extend(cycles(&edges));
    problems
}

/// One message per cycle found by a depth-first search.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle: Vec<String> = stack[at..].to_vec();
            cycle.push(node.to_string());
            found.insert(format!("import cycle: {}", cycle.join(" → ")));
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done, found);
        }
        stack.pop();
        done.insert(node.to_string());
    }
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, edges, &mut Vec::new(), &mut done, &mut found);
    }
    found.into_iter().collect()
}

/// (top-level module, file text) for every file of the library.
fn library_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, src: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).unwrap();
                let first = relative.components().next().unwrap();
                let module = first
                    .as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string();
                if module == "lib" || module == "main" {
                    continue;
                }
                out.push((module, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&src, &src, &mut out);
    out
}

#[test]
fn the_library_imports_run_one_way_without_cycles() {
    let sources = library_sources();
    assert!(sources.len() > 100, "the scan found the sources");
    let edges = graph(&sources);
    for (from, to) in [
        ("kubeconfig", "pki"),
        ("model", "config"),
        ("cli", "phases"),
    ] {
        assert!(
            edges[from].contains(to),
            "the scan sees {from} → {to}: {edges:?}"
        );
    }
    let problems = violations(&sources);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_sees_every_form_of_path_and_flags_forbidden_edges() {
    let source = |module: &str, text: &str| (module.to_string(), text.to_string());
    let found = referenced_modules(
        "use crate::{config::types::Arg, host::{Host, NodePath}};\n\
         let x = crate::net::cidr::parse(y); // crate::cli in a comment\n\
         use crate::pki;\n",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["config", "host", "net", "pki"]
    );
    let upward = violations(&[source("config", "use crate::cli::config::validate_join;\n")]);
    assert_eq!(upward.len(), 1, "{upward:?}");
    assert!(upward[0].contains("`config` (layer 3) imports `cli` (layer 0)"));
    let circle = violations(&[
        source("pki", "use crate::kubeconfig::files;\n"),
        source("kubeconfig", "use crate::pki::store;\n"),
    ]);
    assert_eq!(circle, ["import cycle: kubeconfig → pki → kubeconfig"]);
    let unplaced = violations(&[source("gadget", "use crate::host::Host;\n")]);
    assert!(unplaced[0].contains("in no layer"), "{unplaced:?}");
}
