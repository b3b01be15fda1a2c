//! The layers of `docs/ARCHITECTURE.md`, kept true: every `crate::` path of every source file
//! of the library points to its own layer or one below, no two modules import each other,
//! `unsafe` appears only in the layers allowed it, and `lib.rs` allows `unsafe_code` in
//! exactly those modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One row of the table: a layer's name, its modules, whether it may hold `unsafe`.
#[derive(Debug)]
struct Layer {
    name: String,
    modules: Vec<String>,
    unsafe_allowed: bool,
}

/// The table under "## The layers" in the architecture document.
fn parse_table(doc: &str) -> Vec<Layer> {
    let section = doc.split("## The layers").nth(1).expect("a \"## The layers\" section");
    let mut layers = Vec::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a row of three cells: {line}");
        if cells[0] == "layer" || cells[0].starts_with("---") {
            continue;
        }
        let unsafe_allowed = match cells[2] {
            "yes" => true,
            "no" => false,
            other => panic!("unsafe is yes or no, not {other:?}: {line}"),
        };
        let modules = cells[1].split(',').map(|m| m.trim().to_string()).collect();
        layers.push(Layer { name: cells[0].to_string(), modules, unsafe_allowed });
    }
    assert!(!layers.is_empty(), "the table has rows");
    layers
}

/// Source text without comments, string and char literals (their contents become spaces),
/// so that a path in a doc comment or a message is not taken for an import.
fn code_only(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = source[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            out.push(' ');
            i = end;
        } else if b[i] == b'"' || (b[i] == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !ident_byte(prev(b, i)))
        {
            i = skip_string(b, i);
            out.push_str("\"\"");
        } else if b[i] == b'\'' && is_char_literal(b, i) {
            i = skip_char(b, i);
            out.push_str("' '");
        } else {
            let c = source[i..].chars().next().expect("a char at a boundary");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn prev(b: &[u8], i: usize) -> u8 {
    if i == 0 { b' ' } else { b[i - 1] }
}

fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Skips a string literal (plain, byte, C or raw) starting at `i`; returns the index after it.
fn skip_string(b: &[u8], mut i: usize) -> usize {
    if b[i] == b'r' {
        i += 1;
        let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
        i += hashes + 1;
        let closing: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
        while i < b.len() && !b[i..].starts_with(&closing) {
            i += 1;
        }
        return (i + closing.len()).min(b.len());
    }
    i += 1;
    while i < b.len() && b[i] != b'"' {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    (i + 1).min(b.len())
}

/// Whether the `'` at `i` opens a char literal rather than a lifetime or a label.
fn is_char_literal(b: &[u8], i: usize) -> bool {
    match b.get(i + 1) {
        Some(b'\\') => true,
        Some(_) => {
            // 'x' (one char, perhaps several bytes) closes within five bytes.
            (i + 2..(i + 6).min(b.len())).any(|j| b[j] == b'\'')
                && !b[i + 1..].iter().take_while(|&&c| c != b'\'').any(|&c| c == b' ' || c == b',' || c == b'>')
        }
        None => false,
    }
}

fn skip_char(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while i < b.len() && b[i] != b'\'' {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    (i + 1).min(b.len())
}

/// The first segments of every `crate::` path in `code`, `crate::{a, b::c}` included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].bytes().last().unwrap_or(b' ');
        rest = &rest[at + "crate::".len()..];
        if ident_byte(before) {
            continue; // `some_crate::`, not `crate::`
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (c == ',' && depth == 1) {
                    if let Some(first) = first_ident(&item) {
                        found.insert(first);
                    }
                    item.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else if let Some(first) = first_ident(rest) {
            found.insert(first);
        }
    }
    found
}

fn first_ident(s: &str) -> Option<String> {
    let s = s.trim_start();
    let ident: String = s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!ident.is_empty()).then_some(ident)
}

/// Whether `code` holds the keyword `unsafe`.
fn has_unsafe(code: &str) -> bool {
    code.match_indices("unsafe").any(|(at, _)| {
        !ident_byte(prev(code.as_bytes(), at)) && !code.as_bytes().get(at + 6).copied().is_some_and(ident_byte)
    })
}

/// `pub use module::{A, B};` and `pub use module::A;` of `lib.rs`: which module each
/// re-exported item comes from, for paths like `crate::Canceller`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for stmt in lib.split(';') {
        // After any attributes (`#[cfg(feature = "store")]`).
        let Some(at) = stmt.find("pub use ") else { continue };
        let body = &stmt[at + "pub use ".len()..];
        let Some((module, items)) = body.split_once("::") else { continue };
        for item in items.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|s| !s.is_empty()) {
            // `store::fuzzing` names a module of `store`, `x as y` both: all map to `module`.
            map.insert(item.to_string(), module.trim().to_string());
        }
    }
    map
}

/// The modules `lib.rs` declares with `#[allow(unsafe_code)]` on the line before.
fn unsafe_allowed_in_lib(lib: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = lib.lines().map(str::trim).collect();
    let mut allowed = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("#[allow(unsafe_code)]")
            && let Some(next) = lines.get(i + 1)
            && let Some(name) = next.strip_prefix("mod ").or_else(|| next.strip_prefix("pub(crate) mod "))
        {
            allowed.insert(name.trim_end_matches(';').to_string());
        }
    }
    allowed
}

/// A source file of the library: its path below `src`, and its text.
struct Source {
    rel: String,
    text: String,
}

/// The top-level module a file belongs to: `plan.rs` → `plan`, `spawn/child.rs` → `spawn`.
fn module_of(rel: &str) -> String {
    rel.split('/').next().expect("a path").trim_end_matches(".rs").to_string()
}

/// Every rule broken, one line each.
fn violations(layers: &[Layer], sources: &[Source]) -> Vec<String> {
    let mut bad = Vec::new();
    let layer_of: BTreeMap<&str, usize> =
        layers.iter().enumerate().flat_map(|(i, l)| l.modules.iter().map(move |m| (m.as_str(), i))).collect();
    let lib = sources.iter().find(|s| s.rel == "lib.rs").map_or("", |s| s.text.as_str());
    let items = reexports(&code_only(lib));
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut present = BTreeSet::new();
    for source in sources {
        let module = module_of(&source.rel);
        present.insert(module.clone());
        let Some(&from) = layer_of.get(module.as_str()) else {
            bad.push(format!("{}: module `{module}` is in no layer of the table", source.rel));
            continue;
        };
        let code = code_only(&source.text);
        if has_unsafe(&code) && !layers[from].unsafe_allowed {
            bad.push(format!("{}: `unsafe` in layer {}, which may not hold it", source.rel, layers[from].name));
        }
        for path in crate_paths(&code) {
            let target = if layer_of.contains_key(path.as_str()) {
                path.clone()
            } else if let Some(m) = items.get(&path) {
                m.clone()
            } else {
                bad.push(format!("{}: `crate::{path}` is neither a module nor a re-export of lib.rs", source.rel));
                continue;
            };
            if target == module {
                continue;
            }
            let to = layer_of[target.as_str()];
            if to > from {
                bad.push(format!(
                    "{}: `{module}` ({}) imports `{target}` ({}), a layer above it",
                    source.rel, layers[from].name, layers[to].name
                ));
            }
            graph.entry(module.clone()).or_default().entry(target).or_insert_with(|| source.rel.clone());
        }
    }
    for layer in layers {
        for m in &layer.modules {
            if !present.contains(m) {
                bad.push(format!("the table names `{m}`, which has no source file"));
            }
        }
    }
    for cycle in cycles(&graph) {
        bad.push(format!("modules import each other in a circle: {}", cycle.join(" → ")));
    }
    let declared = unsafe_allowed_in_lib(lib);
    for layer in layers {
        for m in &layer.modules {
            if declared.contains(m) != layer.unsafe_allowed && m != "lib" {
                bad.push(format!(
                    "lib.rs {} `unsafe_code` for `{m}`, but its layer ({}) says {}",
                    if declared.contains(m) { "allows" } else { "does not allow" },
                    layer.name,
                    if layer.unsafe_allowed { "yes" } else { "no" }
                ));
            }
        }
    }
    bad
}

/// The circles of the module graph (strongly connected parts of two or more), each as a
/// path that comes back to its start.
fn cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    let nodes: Vec<&String> = graph.keys().collect();
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(n) = stack.pop() {
            for next in graph.get(&n).into_iter().flat_map(|e| e.keys()) {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    let mut placed = BTreeSet::new();
    for n in nodes {
        if placed.contains(n) {
            continue;
        }
        let from_n = reach(n);
        if !from_n.contains(n) {
            continue;
        }
        let mut part: Vec<String> = from_n
            .iter()
            .filter(|m| reach(m).contains(n.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        placed.extend(part.iter().cloned());
        part.push(part[0].clone());
        found.push(part);
    }
    found
}

fn read_sources(src: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from(src)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the source tree") {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(src).expect("below src").to_string_lossy().into_owned();
            // The CLI is a binary of its own on the API (`cli_files_form_no_circle`); the
            // init is a program of its own, with no `crate::` of the library.
            if rel == "bin" || rel == "spawn/init" {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if rel.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                out.push(Source { rel, text });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn table() -> Vec<Layer> {
    let doc = manifest_dir().join("../docs/ARCHITECTURE.md");
    parse_table(&std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("read {}: {e}", doc.display())))
}

#[test]
fn every_import_points_down_and_unsafe_stays_in_its_layers() {
    let sources = read_sources(&manifest_dir().join("src"));
    assert!(sources.len() > 40, "the source tree was read ({} files)", sources.len());
    let bad = violations(&table(), &sources);
    assert!(bad.is_empty(), "the layers of docs/ARCHITECTURE.md are broken:\n  {}", bad.join("\n  "));
}

/// The modules of a crate whose root file is `root` (`main` or `lib`), each a file of
/// `dir`, and what each imports from the others: `crate::item` that is not a module is
/// the root's.
fn file_graph(dir: &Path, root: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let stem = path.file_stem().expect("a file name").to_string_lossy().into_owned();
            files.push((stem, std::fs::read_to_string(&path).expect("read a source file")));
        }
    }
    assert!(files.len() >= 5, "the files of {} were read", dir.display());
    let modules: BTreeSet<&str> = files.iter().map(|(m, _)| m.as_str()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (module, text) in &files {
        for path in crate_paths(&code_only(text)) {
            let target = if modules.contains(path.as_str()) { path } else { root.to_string() };
            if &target != module {
                graph.entry(module.clone()).or_default().insert(target, module.clone());
            }
        }
    }
    graph
}

/// The CLI's files import each other without a circle: verbs on top (`main.rs`), the
/// flags, the report and the verbs' helpers below; nothing imports `main.rs`.
#[test]
fn cli_files_form_no_circle() {
    let graph = file_graph(&manifest_dir().join("src/bin/isolette"), "main");
    let circles = cycles(&graph);
    assert!(circles.is_empty(), "the CLI's files import each other in a circle: {circles:?}");
    let into_main: Vec<&String> = graph.iter().filter(|(_, to)| to.contains_key("main")).map(|(m, _)| m).collect();
    assert!(into_main.is_empty(), "{into_main:?} import main.rs, the top");
}

/// The Python binding's files import each other without a circle.
#[test]
fn python_binding_files_form_no_circle() {
    let graph = file_graph(&manifest_dir().join("../bindings-python/src"), "lib");
    let circles = cycles(&graph);
    assert!(circles.is_empty(), "the Python binding's files import each other in a circle: {circles:?}");
}

/// The checker itself catches what it is for: an upward import (plain, grouped, and
/// through a re-export), a circle, stray `unsafe`, a module missing from the table.
#[test]
fn the_checker_catches_each_kind_of_break() {
    let layers = parse_table(
        "## The layers\n\n| layer | modules | unsafe |\n| --- | --- | --- |\n| low | a, b, lib | no |\n| high | c | yes |\n",
    );
    let src = |rel: &str, text: &str| Source { rel: rel.into(), text: text.into() };
    let lib =
        src("lib.rs", "mod a;\nmod b;\n#[allow(unsafe_code)]\nmod c;\n#[cfg(feature = \"x\")]\npub use c::Thing;\n");
    let clean = [
        lib,
        src("a.rs", "use crate::b::X; // crate::c in a comment\nfn f() { let s = \"crate::c\"; let c = 'c'; }"),
        src("b/mod.rs", "fn g<'a>(x: &'a str) {}"),
        src("c.rs", "use crate::{a, b::Y};\nfn h() { unsafe {} }"),
    ];
    assert_eq!(violations(&layers, &clean), Vec::<String>::new());
    let cases: [(&str, &str, &str); 6] = [
        ("a.rs", "use crate::c::Z;", "imports `c`"),
        ("a.rs", "use crate::{b, c::Z};", "imports `c`"),
        ("a.rs", "fn f(_: crate::Thing) {}", "imports `c`"),
        ("b/x.rs", "use crate::a::Q;", "circle"),
        ("a.rs", "fn f() { unsafe {} }", "`unsafe` in layer low"),
        ("d.rs", "", "in no layer"),
    ];
    for (rel, text, expected) in cases {
        let mut sources: Vec<Source> = clean.iter().map(|s| src(&s.rel, &s.text)).collect();
        if rel == "b/x.rs" {
            // b imports a, which imports b: a circle within one layer.
            sources.push(src(rel, text));
        } else if let Some(s) = sources.iter_mut().find(|s| s.rel == rel) {
            s.text.push('\n');
            s.text.push_str(text);
        } else {
            sources.push(src(rel, text));
        }
        let bad = violations(&layers, &sources);
        assert!(bad.iter().any(|b| b.contains(expected)), "{rel} with {text:?}: expected {expected:?}, got {bad:?}");
    }
}
