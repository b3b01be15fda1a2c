//! Dockerfiles (`isolette build`): the recipe reader and Docker's word rules never panic;
//! a word without `$`, quotes or escapes expands to itself.
#![no_main]

use isolette::build::{Instruction, Recipe, Source, words};
use libfuzzer_sys::fuzz_target;

fn lookup(name: &str) -> Option<String> {
    (name == "A").then(|| "a $B 'q'".to_string())
}

fn words_of(instruction: &Instruction) -> Vec<&str> {
    match instruction {
        Instruction::Env(pairs) | Instruction::Label(pairs) => {
            pairs.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]).collect()
        }
        Instruction::Workdir(w) | Instruction::User(w) | Instruction::StopSignal(w) => vec![w.as_str()],
        Instruction::Expose(list) | Instruction::Volume(list) => list.iter().map(String::as_str).collect(),
        Instruction::Copy(t) | Instruction::Add(t) => {
            let mut all: Vec<&str> = t.sources.iter().filter_map(|s| match s {
                Source::Path(p) => Some(p.as_str()),
                _ => None,
            }).collect();
            all.push(&t.dest);
            all.extend(t.from.as_deref());
            all
        }
        Instruction::Arg(args) => args.iter().flat_map(|a| a.default.as_deref()).collect(),
        _ => Vec::new(),
    }
}

fuzz_target!(|text: &str| {
    if let Ok(recipe) = Recipe::parse(text, "Dockerfile") {
        for (i, stage) in recipe.stages.iter().enumerate() {
            let _ = words::expand(&stage.image, recipe.escape, &lookup);
            for step in &stage.steps {
                for word in words_of(&step.instruction) {
                    let _ = words::expand(word, recipe.escape, &lookup);
                }
            }
            let needed = recipe.needed(i, &|w| Ok(w.to_string())).expect("needed without expansion errors");
            assert_eq!(needed.last(), Some(&i), "a stage needs itself, last");
        }
    }
    if let Ok(list) = words::split(text, '\\') {
        for word in list {
            let plain = !word.contains(['$', '\'', '"', '\\']);
            let expanded = words::expand(&word, '\\', &lookup);
            if plain {
                assert_eq!(expanded.as_deref(), Ok(word.as_str()), "a plain word is itself");
            }
        }
    }
});
