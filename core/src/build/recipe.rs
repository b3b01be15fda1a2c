//! A Dockerfile, read and checked: its global `ARG`s and its stages, each instruction with
//! its line, in isolette's own types. The syntax is parsed by the `parse-dockerfile` crate
//! (parser directives, continuations, heredocs, JSON forms); which instructions and flags
//! a build takes, and the errors that name the line, are ours. Words stay as written:
//! they are expanded ([`words::expand`](super::words::expand)) when a stage is built, with
//! the `ARG`s and `ENV`s in scope at that step.

use parse_dockerfile as pd;

use super::words;
use crate::error::{Error, Result};

/// A Dockerfile: the `ARG`s before its first `FROM`, and its stages in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The escape character (`\`, or what `# escape=` says).
    pub escape: char,
    /// `ARG`s before the first `FROM`: usable in `FROM` lines, and in a stage that
    /// declares them again.
    pub args: Vec<ArgDecl>,
    /// The stages, from the first `FROM` on.
    pub stages: Vec<Stage>,
}

/// One stage: a `FROM` and the steps after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `FROM` line.
    pub line: usize,
    /// The base image as written: a store name, `scratch`, or an earlier stage's name.
    pub image: String,
    /// `FROM image AS name`.
    pub name: Option<String>,
    /// The instructions after the `FROM`.
    pub steps: Vec<Step>,
}

/// One instruction and its line (where it starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The line its keyword is on, from 1.
    pub line: usize,
    /// What it says.
    pub instruction: Instruction,
}

/// An `ARG`: a name and its default as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// The name.
    pub name: String,
    /// `ARG NAME=default`.
    pub default: Option<String>,
}

/// A command of `RUN`, `CMD`, `ENTRYPOINT` or `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["prog", "arg"]`: the argv itself.
    Exec(Vec<String>),
    /// `prog arg`: a line for the stage's `SHELL` (`/bin/sh -c` unless set).
    Shell(String),
}

/// A here-document (`<<EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HereDoc {
    /// The text between the delimiter lines.
    pub body: String,
    /// Whether variables in it expand (the delimiter was not quoted).
    pub expand: bool,
}

/// Where a `COPY` or `ADD` source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path in the context (or in the `--from` stage or image), as written.
    Path(String),
    /// A here-document's text, as a file.
    HereDoc(HereDoc),
}

/// A `COPY` or `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// What to copy.
    pub sources: Vec<Source>,
    /// Where to, in the image.
    pub dest: String,
    /// `--from=STAGE|IMAGE`.
    pub from: Option<String>,
    /// `--chown=USER[:GROUP]`.
    pub chown: Option<String>,
    /// `--chmod=MODE`.
    pub chmod: Option<String>,
}

/// A `RUN`'s own network (`RUN --network=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunNetwork {
    /// The build's network (`default`).
    Default,
    /// None at all (`none`).
    None,
}

/// An instruction a build takes, with its words as written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Instruction {
    /// `RUN [--network=default|none] command`, with its here-documents.
    Run {
        /// The command.
        command: Command,
        /// `--network`.
        network: Option<RunNetwork>,
        /// `<<EOF` bodies, in order.
        heredocs: Vec<HereDoc>,
    },
    /// `COPY`.
    Copy(Transfer),
    /// `ADD` (a local tar is extracted).
    Add(Transfer),
    /// `WORKDIR dir`.
    Workdir(String),
    /// `ENV KEY=VALUE ...` (or `ENV KEY VALUE`).
    Env(Vec<(String, String)>),
    /// `ARG NAME[=default] ...`.
    Arg(Vec<ArgDecl>),
    /// `USER user[:group]`.
    User(String),
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `EXPOSE port[/proto] ...`.
    Expose(Vec<String>),
    /// `LABEL KEY=VALUE ...`.
    Label(Vec<(String, String)>),
    /// `STOPSIGNAL signal`.
    StopSignal(String),
    /// `SHELL ["prog", "arg"]`.
    Shell(Vec<String>),
    /// `HEALTHCHECK [options] CMD command` (with its `--name=value` options), or
    /// `HEALTHCHECK NONE` (`None`).
    Healthcheck(Option<(Command, Vec<(String, String)>)>),
    /// `VOLUME path ...`.
    Volume(Vec<String>),
}

impl Recipe {
    /// Reads a Dockerfile's text. `name` (its path) is for the errors, which name the line:
    /// a syntax error, an instruction or flag a build does not take, `ADD` of a URL, a
    /// Dockerfile without `FROM`.
    pub fn parse(text: &str, name: &str) -> Result<Recipe> {
        let at = |offset: usize| line_of(text, offset);
        let bad = |line: usize, why: String| Error::config(format!("{name} line {line}: {why}"));
        let file = pd::parse(text).map_err(|e| {
            let line = e.line().max(1);
            // The parser takes a here-document only right after the keyword (`RUN <<EOF`):
            // `RUN python3 <<EOF` leaves the document's lines to be read as instructions.
            let before = text.lines().take(line.saturating_sub(1)).any(|l| l.contains("<<"));
            let hint = if before && e.to_string().contains("unknown instruction") {
                "; a here-document must come right after the keyword (`RUN <<EOF`, `COPY <<EOF /path`), or be \
                 written with `RUN <<EOF python3`"
            } else {
                ""
            };
            Error::config(format!("{name} line {line}: {e}{hint}"))
        })?;
        let escape = file.parser_directives.escape.as_ref().map_or('\\', |d| d.value.value);
        let mut recipe = Recipe { escape, args: Vec::new(), stages: Vec::new() };
        for instruction in &file.instructions {
            let line = at(keyword_start(instruction));
            let step = convert(instruction, escape).map_err(|why| bad(line, why))?;
            match (step, recipe.stages.last_mut()) {
                (Converted::From(stage), _) => recipe.stages.push(Stage { line, ..stage }),
                (Converted::Step(Instruction::Arg(args)), None) => recipe.args.extend(args),
                (Converted::Step(_), None) => {
                    return Err(bad(line, "only ARG may come before the first FROM".into()));
                }
                (Converted::Step(instruction), Some(stage)) => stage.steps.push(Step { line, instruction }),
            }
        }
        if recipe.stages.is_empty() {
            return Err(Error::config(format!("{name}: no FROM: a Dockerfile starts its first stage with FROM")));
        }
        let mut names: Vec<&str> = Vec::new();
        for stage in &recipe.stages {
            if let Some(n) = &stage.name {
                if names.iter().any(|m| m.eq_ignore_ascii_case(n)) {
                    return Err(bad(stage.line, format!("a stage named `{n}` comes before this one")));
                }
                names.push(n);
            }
        }
        Ok(recipe)
    }

    /// The index of the stage `target` names (`--target`), or of the last stage.
    pub fn target(&self, target: Option<&str>) -> Result<usize> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self.stage_index(t).ok_or_else(|| {
                let names: Vec<&str> = self.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                Error::config(format!("no stage `{t}` to build (--target); the named stages are: {}", names.join(", ")))
            }),
        }
    }

    /// The stage a `FROM` or `--from` word names: by name (any case), or by its number.
    pub fn stage_index(&self, word: &str) -> Option<usize> {
        self.stages
            .iter()
            .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(word)))
            .or_else(|| word.parse::<usize>().ok().filter(|&i| i < self.stages.len()))
    }

    /// The stages `target` needs, in order, itself last: those its `FROM` and its
    /// `COPY --from`s name, and theirs. `expand` gives a word's value (the global `ARG`s
    /// for `FROM`); a failing unused stage never runs.
    pub fn needed(&self, target: usize, expand: &dyn Fn(&str) -> Result<String>) -> Result<Vec<usize>> {
        let mut needed = vec![false; self.stages.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut needed[i], true) {
                continue;
            }
            let stage = &self.stages[i];
            let mut words = vec![stage.image.clone()];
            for step in &stage.steps {
                if let Instruction::Copy(t) | Instruction::Add(t) = &step.instruction
                    && let Some(from) = &t.from
                {
                    words.push(from.clone());
                }
            }
            for word in words {
                // Only an earlier stage: a later one of that name is an image's name.
                if let Some(j) = self.stage_index(&expand(&word)?).filter(|&j| j < i) {
                    todo.push(j);
                }
            }
        }
        Ok((0..self.stages.len()).filter(|&i| needed[i]).collect())
    }
}

/// What one parsed instruction becomes.
enum Converted {
    From(Stage),
    Step(Instruction),
}

/// The line (from 1) of the byte at `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn keyword_start(i: &pd::Instruction<'_>) -> usize {
    use pd::Instruction as I;
    let keyword = match i {
        I::Add(x) => &x.add,
        I::Arg(x) => &x.arg,
        I::Cmd(x) => &x.cmd,
        I::Copy(x) => &x.copy,
        I::Entrypoint(x) => &x.entrypoint,
        I::Env(x) => &x.env,
        I::Expose(x) => &x.expose,
        I::From(x) => &x.from,
        I::Healthcheck(x) => &x.healthcheck,
        I::Label(x) => &x.label,
        I::Maintainer(x) => &x.maintainer,
        I::Onbuild(x) => &x.onbuild,
        I::Run(x) => &x.run,
        I::Shell(x) => &x.shell,
        I::Stopsignal(x) => &x.stopsignal,
        I::User(x) => &x.user,
        I::Volume(x) => &x.volume,
        I::Workdir(x) => &x.workdir,
        _ => return 0,
    };
    keyword.span.start
}

fn convert(i: &pd::Instruction<'_>, escape: char) -> std::result::Result<Converted, String> {
    use pd::Instruction as I;
    let step = |instruction| Ok(Converted::Step(instruction));
    match i {
        I::From(f) => {
            no_flags("FROM", &f.options, &[])?;
            let name = f.as_.as_ref().map(|(_, n)| n.value.to_string());
            Ok(Converted::From(Stage { line: 0, image: f.image.value.to_string(), name, steps: Vec::new() }))
        }
        I::Run(r) => {
            no_flags("RUN", &r.options, &["network"])?;
            let network = match flag(&r.options, "network").as_deref() {
                None => None,
                Some("default") => Some(RunNetwork::Default),
                Some("none") => Some(RunNetwork::None),
                Some(other) => return Err(format!("RUN --network={other}: a build step's network is default or none")),
            };
            let heredocs = r.here_docs.iter().map(heredoc).collect();
            step(Instruction::Run { command: command(&r.arguments), network, heredocs })
        }
        I::Copy(c) => {
            no_flags("COPY", &c.options, &["from", "chown", "chmod"])?;
            step(Instruction::Copy(transfer(&c.options, &c.src, &c.dest.value, false)?))
        }
        I::Add(a) => {
            no_flags("ADD", &a.options, &["from", "chown", "chmod"])?;
            step(Instruction::Add(transfer(&a.options, &a.src, &a.dest.value, true)?))
        }
        I::Workdir(w) => step(Instruction::Workdir(non_empty("WORKDIR", &w.arguments.value)?)),
        I::User(u) => step(Instruction::User(non_empty("USER", &u.arguments.value)?)),
        I::Stopsignal(s) => step(Instruction::StopSignal(non_empty("STOPSIGNAL", &s.arguments.value)?)),
        I::Env(e) => step(Instruction::Env(valued("ENV", &e.arguments.value, escape)?)),
        I::Label(l) => step(Instruction::Label(valued("LABEL", &l.arguments.value, escape)?)),
        I::Arg(a) => {
            let pairs = words::pairs(&a.arguments.value, escape, false).map_err(|e| format!("ARG: {e}"))?;
            if pairs.is_empty() {
                return Err("ARG needs a name".into());
            }
            step(Instruction::Arg(pairs.into_iter().map(|(name, default)| ArgDecl { name, default }).collect()))
        }
        I::Cmd(c) => step(Instruction::Cmd(command(&c.arguments))),
        I::Entrypoint(e) => step(Instruction::Entrypoint(command(&e.arguments))),
        I::Expose(e) => step(Instruction::Expose(e.arguments.iter().map(|p| p.value.to_string()).collect())),
        I::Shell(s) => step(Instruction::Shell(s.arguments.iter().map(|p| p.value.to_string()).collect())),
        I::Volume(v) => step(Instruction::Volume(match &v.arguments {
            pd::JsonOrStringArray::Json(list) => list.value.iter().map(|p| p.value.to_string()).collect(),
            pd::JsonOrStringArray::String(list) => list.iter().map(|p| p.value.to_string()).collect(),
        })),
        I::Healthcheck(h) => {
            no_flags("HEALTHCHECK", &h.options, &["interval", "timeout", "start-period", "start-interval", "retries"])?;
            let options = h
                .options
                .iter()
                .map(|f| (f.name.value.to_string(), f.value.as_ref().map_or_else(String::new, |v| v.value.to_string())))
                .collect();
            step(Instruction::Healthcheck(match &h.arguments {
                pd::HealthcheckArguments::Cmd { arguments, .. } => Some((command(arguments), options)),
                _ => None,
            }))
        }
        I::Maintainer(_) => Err("MAINTAINER is not taken: use LABEL maintainer=\"...\"".into()),
        I::Onbuild(_) => Err("ONBUILD is not taken by isolette build".into()),
        _ => Err("an instruction isolette build does not take".into()),
    }
}

fn command(c: &pd::Command<'_>) -> Command {
    match c {
        pd::Command::Exec(list) => Command::Exec(list.value.iter().map(|a| a.value.to_string()).collect()),
        pd::Command::Shell(line) => Command::Shell(line.value.to_string()),
        _ => Command::Shell(String::new()),
    }
}

fn heredoc(h: &pd::HereDoc<'_>) -> HereDoc {
    HereDoc { body: h.value.to_string(), expand: h.expand }
}

fn transfer(
    options: &[pd::Flag<'_>],
    sources: &[pd::Source<'_>],
    dest: &str,
    add: bool,
) -> std::result::Result<Transfer, String> {
    let mut list = Vec::new();
    for source in sources {
        match source {
            pd::Source::Path(p) => {
                let path = p.value.to_string();
                if add && ["http://", "https://", "git@"].iter().any(|s| path.starts_with(s)) {
                    return Err(format!(
                        "ADD {path}: isolette build adds context files only; fetch it in a RUN step, or put it in \
                         the context"
                    ));
                }
                list.push(Source::Path(path));
            }
            pd::Source::HereDoc(h) => list.push(Source::HereDoc(heredoc(h))),
            _ => return Err("a source isolette build does not take".into()),
        }
    }
    Ok(Transfer {
        sources: list,
        dest: dest.to_string(),
        from: flag(options, "from"),
        chown: flag(options, "chown"),
        chmod: flag(options, "chmod"),
    })
}

/// Refuses a flag not in `allowed`, or one given twice.
fn no_flags(keyword: &str, options: &[pd::Flag<'_>], allowed: &[&str]) -> std::result::Result<(), String> {
    for (i, f) in options.iter().enumerate() {
        let name = &f.name.value;
        if !allowed.contains(&name.as_ref()) {
            let taken = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.iter().map(|a| format!("--{a}")).collect::<Vec<_>>().join(", ")
            };
            return Err(format!("{keyword} --{name}: not a flag isolette build takes here (it takes {taken})"));
        }
        if options[..i].iter().any(|g| g.name.value == *name) {
            return Err(format!("{keyword} --{name} is given twice"));
        }
    }
    Ok(())
}

fn flag(options: &[pd::Flag<'_>], name: &str) -> Option<String> {
    options
        .iter()
        .find(|f| f.name.value == name)
        .map(|f| f.value.as_ref().map_or_else(String::new, |v| v.value.to_string()))
}

fn non_empty(keyword: &str, value: &str) -> std::result::Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(format!("{keyword} needs an argument"));
    }
    Ok(value.to_string())
}

/// `KEY=VALUE` pairs (or `KEY VALUE`), each with a value.
fn valued(keyword: &str, text: &str, escape: char) -> std::result::Result<Vec<(String, String)>, String> {
    let pairs = words::pairs(text, escape, true).map_err(|e| format!("{keyword}: {e}"))?;
    if pairs.is_empty() {
        return Err(format!("{keyword} needs KEY=VALUE"));
    }
    pairs
        .into_iter()
        .map(|(k, v)| v.map(|v| (k.clone(), v)).ok_or_else(|| format!("{keyword} {k}: no value (KEY=VALUE)")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=debian
FROM ${BASE} AS build
ENV CC=gcc \
    FLAGS="-O2 -g"
WORKDIR /src
COPY --chmod=644 a.c b.c ./
RUN --network=none $CC $FLAGS -o /out a.c b.c
RUN <<EOF
echo one
echo two
EOF

FROM scratch AS unused
RUN false

FROM busybox
COPY --from=build /out /bin/app
LABEL version=1 "org.title"="the app"
EXPOSE 8080/tcp 53/udp
HEALTHCHECK --interval=5s CMD ["/bin/app", "--ping"]
CMD ["/bin/app"]
"#;

    #[test]
    fn a_dockerfile_reads_into_stages_and_steps() {
        let r = Recipe::parse(FILE, "Dockerfile").unwrap();
        assert_eq!(r.escape, '\\');
        assert_eq!(r.args, [ArgDecl { name: "BASE".into(), default: Some("debian".into()) }]);
        assert_eq!(r.stages.len(), 3);
        let build = &r.stages[0];
        assert_eq!((build.line, build.image.as_str(), build.name.as_deref()), (3, "${BASE}", Some("build")));
        let lines: Vec<usize> = build.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [4, 6, 7, 8, 9]);
        assert_eq!(
            build.steps[0].instruction,
            Instruction::Env(vec![("CC".into(), "gcc".into()), ("FLAGS".into(), "\"-O2 -g\"".into())])
        );
        match &build.steps[2].instruction {
            Instruction::Copy(t) => {
                assert_eq!(t.sources, [Source::Path("a.c".into()), Source::Path("b.c".into())]);
                assert_eq!((t.dest.as_str(), t.chmod.as_deref(), t.from.as_deref()), ("./", Some("644"), None));
            }
            other => panic!("{other:?}"),
        }
        match &build.steps[3].instruction {
            Instruction::Run { command: Command::Shell(line), network: Some(RunNetwork::None), .. } => {
                assert_eq!(line, "$CC $FLAGS -o /out a.c b.c");
            }
            other => panic!("{other:?}"),
        }
        match &build.steps[4].instruction {
            Instruction::Run { heredocs, .. } => assert_eq!(heredocs[0].body, "echo one\necho two\n"),
            other => panic!("{other:?}"),
        }
        let last = &r.stages[2];
        assert!(matches!(&last.steps[0].instruction, Instruction::Copy(t) if t.from.as_deref() == Some("build")));
        assert_eq!(
            last.steps[3].instruction,
            Instruction::Healthcheck(Some((
                Command::Exec(vec!["/bin/app".into(), "--ping".into()]),
                vec![("interval".into(), "5s".into())]
            )))
        );
        assert_eq!(last.steps[4].instruction, Instruction::Cmd(Command::Exec(vec!["/bin/app".into()])));
    }

    #[test]
    fn only_the_stages_the_target_needs() {
        let r = Recipe::parse(FILE, "Dockerfile").unwrap();
        let expand = |w: &str| Ok(w.replace("${BASE}", "debian"));
        assert_eq!(r.needed(r.target(None).unwrap(), &expand).unwrap(), [0, 2], "the unused stage is skipped");
        assert_eq!(r.needed(r.target(Some("unused")).unwrap(), &expand).unwrap(), [1]);
        assert_eq!(r.target(Some("BUILD")).unwrap(), 0, "stage names ignore case");
        assert!(r.target(Some("nope")).unwrap_err().to_string().contains("build, unused"));
    }

    #[test]
    fn bad_dockerfiles_name_the_line() {
        for (text, line, says) in [
            ("FROM a\nMAINTAINER me\n", 2, "LABEL maintainer"),
            ("FROM a\nONBUILD RUN x\n", 2, "ONBUILD"),
            ("RUN x\nFROM a\n", 1, "FROM"),
            ("FROM a\nRUN --mount=type=cache,target=/x true\n", 2, "--mount"),
            ("FROM a\nRUN --network=host true\n", 2, "default or none"),
            ("FROM a\nCOPY --link x /\n", 2, "--link"),
            ("FROM a\nADD https://example.org/x /x\n", 2, "context files only"),
            ("FROM --platform=linux/arm64 a\n", 1, "--platform"),
            ("FROM a\nENV\n", 2, "ENV"),
            ("FROM a\nENV KEY\n", 2, "no value"),
            ("FROM a\nCOPY --from=x --from=y a /\n", 2, "twice"),
            ("FROM a AS x\nFROM b AS X\n", 2, "named `X`"),
            ("FROM a\nBOGUS x\n", 2, ""),
        ] {
            let e = Recipe::parse(text, "ctx/Dockerfile").unwrap_err().to_string();
            assert!(e.contains(&format!("ctx/Dockerfile line {line}")) && e.contains(says), "{text:?}: {e}");
        }
        let e = Recipe::parse("# just a comment\n", "Dockerfile").unwrap_err().to_string();
        assert!(e.contains("Dockerfile line 1") && e.contains("FROM"), "{e}");
    }

    #[test]
    fn another_escape_character() {
        let r = Recipe::parse("# escape=`\nFROM a\nRUN echo `\n  two\n", "Dockerfile").unwrap();
        assert_eq!(r.escape, '`');
        assert_eq!(r.stages[0].steps.len(), 1);
    }

    #[test]
    fn a_here_document_after_a_command_is_explained() {
        let e = Recipe::parse("FROM a\nRUN python3 <<EOF\nprint(1)\nEOF\n", "Dockerfile").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("right after the keyword"), "{e}");
        let r = Recipe::parse("FROM a\nRUN <<EOF python3\nprint(1)\nEOF\n", "Dockerfile").unwrap();
        assert!(matches!(&r.stages[0].steps[0].instruction, Instruction::Run { heredocs, .. } if heredocs.len() == 1));
    }
}
