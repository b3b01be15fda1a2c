//! Compose files: any text gives a project or an error, never a panic; a project that loads
//! has every service once in its order, each after what it depends on, and a config hash
//! for each.
#![no_main]

use std::collections::BTreeMap;

use isolette::compose::{LoadOptions, Project};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // A directory with nothing in it (no `.env`), and variables of the fuzzer's choosing
    // neither: those of the text's first line, `KEY=VALUE;...`, when it starts with `#`.
    let dir = std::env::temp_dir().join("isolette-fuzz-compose");
    let _ = std::fs::create_dir_all(&dir);
    let mut vars = BTreeMap::new();
    if let Some(first) = text.lines().next().and_then(|l| l.strip_prefix('#')) {
        for kv in first.split(';') {
            if let Some((k, v)) = kv.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
    }
    let options = LoadOptions::new().project_name("fuzz").environment(vars);
    let Ok(project) = Project::from_yaml(text, &dir, &options) else { return };
    let order = project.order().expect("a loaded project has an order");
    assert_eq!(order.len(), project.services.len());
    for (i, name) in order.iter().enumerate() {
        for dep in project.services[name].depends_on.keys() {
            assert!(order[..i].contains(dep), "{name} before its dependency {dep}");
        }
        assert_eq!(project.config_hash(name, "image").len(), 64);
        assert!(project.sandbox_name(name).starts_with("fuzz-") || project.services[name].container_name.is_some());
    }
    let _ = project.to_yaml();
});
