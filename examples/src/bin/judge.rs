//! A judge on isolette's Rust API, as an online judge would write one.
//!
//! ```sh
//! cargo run --release -p isolette-examples --bin judge -- \
//!     --problem examples/problems/a-plus-b --language python3 \
//!     examples/languages/python3/samples/ok.py [--json] [--languages DIR]
//! ```
//!
//! A problem is a directory: `limits.json` (`cpu_time_ms`, `wall_time_ms`, `memory_bytes`,
//! `output_bytes`, `compare`: `exact` or `tokens`, `tests`) and `tests/N.in`, `tests/N.out`.
//! Languages are data, one directory each in `examples/languages/` (its `language.json`):
//! an image of the store, the source's name, a compile command with its own limits (or
//! none), the run command and environment, the pids, memory and start-up allowances of the
//! runtime, the stderr lines that mean its heap ran out, the seccomp policy.
//!
//! The source is mounted read-only at `/submission`, the compiler writes to `/out` (a
//! directory of this submission's own), and each test runs in a fresh sandbox with `/out`
//! read-only. Inputs stream from their files; the program's output is compared with the
//! expected file as it comes, never held whole. The verdict is the first failing test's.
//! The exit code is 0 whatever the verdict, and not 0 only when the judge itself failed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use isolette::{Image, MountSpec, Output, Sandbox, SandboxBuilder, SeccompPolicy, Stdin};
use serde_json::{Value, json};

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    match judge() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("judge: {e}");
            ExitCode::from(2)
        }
    }
}

struct Args {
    problem: PathBuf,
    languages: PathBuf,
    language: String,
    source: PathBuf,
    json: bool,
}

fn args() -> Result<Args, Failure> {
    let usage = "usage: judge --problem DIR --language NAME [--languages DIR] SOURCE [--json]";
    let (mut problem, mut language, mut source, mut json) = (None, None, None, false);
    let mut languages = Path::new(env!("CARGO_MANIFEST_DIR")).join("languages");
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--problem") => problem = it.next().map(PathBuf::from),
            Some("--language") => language = it.next().and_then(|l| l.into_string().ok()),
            Some("--languages") => languages = it.next().map(PathBuf::from).ok_or(usage)?,
            Some("--json") => json = true,
            _ => source = Some(PathBuf::from(a)),
        }
    }
    match (problem, language, source) {
        (Some(problem), Some(language), Some(source)) => Ok(Args { problem, languages, language, source, json }),
        _ => Err(usage.into()),
    }
}

fn read_json(path: &Path) -> Result<Value, Failure> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn ms(v: &Value, key: &str) -> Result<Duration, Failure> {
    Ok(Duration::from_millis(v[key].as_u64().ok_or_else(|| format!("`{key}` must be a number"))?))
}

fn bytes(v: &Value, key: &str) -> Result<u64, Failure> {
    Ok(v[key].as_u64().ok_or_else(|| format!("`{key}` must be a number"))?)
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, Failure> {
    let list = v.as_array().ok_or_else(|| format!("`{what}` must be a list of strings"))?;
    Ok(list
        .iter()
        .map(|s| s.as_str().map(String::from))
        .collect::<Option<_>>()
        .ok_or(format!("`{what}` must hold strings"))?)
}

/// A language of the catalog: `examples/languages/NAME/language.json` (the fields are
/// described in `examples/languages/README.md`).
struct Language {
    file: PathBuf,
    profile: Value,
}

impl Language {
    fn load(dir: &Path, name: &str) -> Result<Language, Failure> {
        let file = dir.join(name).join("language.json");
        let known = || {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().join("language.json").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            names.join(", ")
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) || !file.is_file() {
            return Err(format!("unknown language `{name}`; known: {}", known()).into());
        }
        let profile = read_json(&file)?;
        let language = Language { file, profile };
        // Every field is checked now, not when a test needs it.
        let keys = ["image", "source", "compile", "run", "env", "pids", "memory_overhead_bytes", "startup_cpu_ms"];
        for key in keys.into_iter().chain(["memory_errors", "seccomp"]) {
            language.field(key)?;
        }
        let compile = &language.profile["compile"];
        if !compile.is_null() {
            for key in ["command", "cpu_time_ms", "wall_time_ms", "memory_bytes", "output_bytes", "file_bytes", "pids"]
            {
                if compile.get(key).is_none() {
                    return Err(format!("{}: the field `compile.{key}` is missing", language.file.display()).into());
                }
            }
        }
        Ok(language)
    }

    fn field(&self, key: &str) -> Result<&Value, Failure> {
        self.profile.get(key).ok_or_else(|| format!("{}: the field `{key}` is missing", self.file.display()).into())
    }

    fn text(&self, key: &str) -> Result<&str, Failure> {
        self.field(key)?.as_str().ok_or_else(|| format!("{}: `{key}` must be a string", self.file.display()).into())
    }

    fn number(&self, key: &str) -> Result<u64, Failure> {
        self.field(key)?.as_u64().ok_or_else(|| format!("{}: `{key}` must be a number", self.file.display()).into())
    }

    /// The image, from the store (`$ISOLETTE_STORE`, else the default one).
    fn image(&self) -> Result<Image, Failure> {
        let name = self.text("image")?;
        Image::load(name)
            .map_err(|e| format!("{e} (scripts/build-language-images.sh builds the catalog's images)").into())
    }

    /// The run command, `{memory_mb}` replaced by the problem's memory limit.
    fn run(&self, memory: u64) -> Result<Vec<String>, Failure> {
        Ok(strings(self.field("run")?, "run")?.iter().map(|a| fill(a, memory)).collect())
    }

    /// The environment of the compile and the runs, `{memory_mb}` replaced as in `run`.
    fn env(&self, memory: u64) -> Result<Vec<(String, String)>, Failure> {
        let env = self.field("env")?.as_object().ok_or("`env` must be an object")?;
        env.iter().map(|(k, v)| Ok((k.clone(), fill(v.as_str().ok_or("`env` must hold strings")?, memory)))).collect()
    }

    /// Whether the program's stderr says its runtime ran out of memory (a JVM's
    /// `OutOfMemoryError`, Go's `runtime: out of memory`): a `memory_limit` to a contestant.
    fn out_of_memory(&self, stderr: &[u8]) -> Result<bool, Failure> {
        let text = String::from_utf8_lossy(stderr);
        Ok(strings(self.field("memory_errors")?, "memory_errors")?.iter().any(|p| text.contains(p.as_str())))
    }
}

/// `{memory_mb}` in a profile's argument or variable: the problem's memory limit in MiB.
fn fill(value: &str, memory: u64) -> String {
    value.replace("{memory_mb}", &(memory >> 20).to_string())
}

/// A directory the sandbox's user may write (the judge runs as root).
fn open_dir() -> Result<tempfile::TempDir, Failure> {
    let dir = tempfile::Builder::new().prefix("judge-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
    Ok(dir)
}

fn judge() -> Result<(), Failure> {
    let args = args()?;
    let lang = Language::load(&args.languages, &args.language)?;
    let limits = read_json(&args.problem.join("limits.json"))?;
    let image = lang.image()?;
    let seccomp = SeccompPolicy::parse(lang.text("seccomp")?)?;

    // The submission, read-only at /submission; what the compiler makes, at /out.
    let submission = open_dir()?;
    let out = open_dir()?;
    let name = lang.text("source")?;
    std::fs::copy(&args.source, submission.path().join(name)).map_err(|e| format!("{}: {e}", args.source.display()))?;
    std::fs::set_permissions(submission.path().join(name), std::fs::Permissions::from_mode(0o644))?;
    let mounts = |b: SandboxBuilder, out_writable: bool| {
        b.mount(MountSpec { source: submission.path().into(), target: "/submission".into(), writable: false })
            .mount(MountSpec { source: out.path().into(), target: "/out".into(), writable: out_writable })
            .seccomp(seccomp.clone())
    };
    let memory = bytes(&limits, "memory_bytes")?;
    let (run, env) = (lang.run(memory)?, lang.env(memory)?);
    let with_env = |mut b: SandboxBuilder| {
        for (k, v) in &env {
            b = b.env(k, v);
        }
        b
    };

    let mut report = json!({ "verdict": "ok", "compile": null, "tests": [] });
    let compile = lang.field("compile")?;
    if !compile.is_null() {
        // A compiler gets its own limits; each file it writes is held to `file_bytes`.
        let b = with_env(mounts(Sandbox::builder(&image), true))
            .cpu_time(ms(compile, "cpu_time_ms")?)
            .wall_time(ms(compile, "wall_time_ms")?)
            .memory(bytes(compile, "memory_bytes")?)
            .output_limit(bytes(compile, "output_bytes")?)
            .fsize(bytes(compile, "file_bytes")?)
            .pids(bytes(compile, "pids")?)
            .workdir("/out");
        let outcome = b.run(strings(&compile["command"], "compile.command")?)?;
        let message =
            String::from_utf8_lossy(&[outcome.stdout.as_slice(), outcome.stderr.as_slice()].concat()).into_owned();
        report["compile"] = json!({ "status": outcome.status.as_str(), "output": message });
        if outcome.status != isolette::Status::Ok {
            report["verdict"] = "compile_error".into();
            return print(&report, args.json);
        }
    }

    let tokens = match limits["compare"].as_str() {
        Some("tokens") => true,
        Some("exact") => false,
        _ => return Err("`compare` must be \"exact\" or \"tokens\"".into()),
    };
    // The limits the problem states, for the program: the runtime's start-up
    // (`startup_cpu_ms`) and its own memory beside the heap (`memory_overhead_bytes`) come on top.
    let startup = Duration::from_millis(lang.number("startup_cpu_ms")?);
    let box_ = with_env(mounts(Sandbox::builder(&image), false))
        .cpu_time(ms(&limits, "cpu_time_ms")? + startup)
        .wall_time(ms(&limits, "wall_time_ms")? + startup)
        .memory(memory + lang.number("memory_overhead_bytes")?)
        .output_limit(bytes(&limits, "output_bytes")?)
        .pids(lang.number("pids")?)
        .workdir("/out")
        .stdout(Output::Pipe)
        .stderr(Output::Capture);
    for n in 1..=bytes(&limits, "tests")? {
        let input = args.problem.join(format!("tests/{n}.in"));
        let expected = args.problem.join(format!("tests/{n}.out"));
        let mut running = box_.clone().stdin_from(Stdin::File(input)).spawn(&run)?;
        let shown = running.take_stdout().ok_or("stdout is piped")?;
        let same = compare(BufReader::new(shown), BufReader::new(File::open(&expected)?), tokens)?;
        let outcome = running.wait()?;
        let status = match outcome.status {
            isolette::Status::Ok if !same => "wrong_answer",
            isolette::Status::RuntimeError | isolette::Status::Signaled if lang.out_of_memory(&outcome.stderr)? => {
                "memory_limit"
            }
            s => s.as_str(),
        };
        report["tests"].as_array_mut().expect("a list").push(json!({
            "test": n,
            "status": status,
            "cpu_ms": outcome.cpu_time.as_secs_f64() * 1000.0,
            "wall_ms": outcome.wall_time.as_secs_f64() * 1000.0,
            "memory_bytes": outcome.memory_peak,
            "exit_code": outcome.exit_code,
            "signal": outcome.signal,
        }));
        if status != "ok" {
            report["verdict"] = status.into();
            break;
        }
    }
    print(&report, args.json)
}

/// Whether the program's output equals the expected one, bytes or whitespace-separated
/// tokens, read as both come (the whole output is read even after a difference, so the
/// program is never left waiting on a full stream).
fn compare(mut got: impl BufRead, mut want: impl BufRead, tokens: bool) -> Result<bool, Failure> {
    if tokens {
        let mut same = true;
        loop {
            let (a, b) = (token(&mut got)?, if same { token(&mut want)? } else { None });
            match (a, b) {
                (None, None) => return Ok(same),
                (None, Some(_)) => return Ok(false),
                (Some(a), b) => same &= b.is_some_and(|b| a == b),
            }
        }
    }
    let (mut a, mut b) = ([0u8; 8192], [0u8; 8192]);
    let mut same = true;
    loop {
        let n = got.read(&mut a)?;
        if n == 0 {
            return Ok(same && want.read(&mut b[..1])? == 0);
        }
        if same {
            let mut read = 0;
            while read < n {
                let m = want.read(&mut b[read..n])?;
                if m == 0 {
                    break;
                }
                read += m;
            }
            same = read == n && a[..n] == b[..n];
        }
    }
}

/// The next whitespace-separated token, or `None` at the end.
fn token(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, Failure> {
    let mut tok = Vec::new();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok((!tok.is_empty()).then_some(tok));
        }
        let mut used = 0;
        for &c in buf {
            used += 1;
            if c.is_ascii_whitespace() {
                if !tok.is_empty() {
                    r.consume(used);
                    return Ok(Some(tok));
                }
            } else {
                tok.push(c);
            }
        }
        r.consume(used);
    }
}

fn print(report: &Value, json: bool) -> Result<(), Failure> {
    if json {
        println!("{report}");
        return Ok(());
    }
    if let Some(c) = report["compile"].as_object() {
        println!("compile: {}", c["status"].as_str().unwrap_or("?"));
        if report["verdict"] == "compile_error" {
            println!("{}", c["output"].as_str().unwrap_or(""));
        }
    }
    println!("{:>4}  {:<16} {:>9} {:>9} {:>10}", "test", "verdict", "cpu ms", "wall ms", "memory");
    for t in report["tests"].as_array().into_iter().flatten() {
        println!(
            "{:>4}  {:<16} {:>9.1} {:>9.1} {:>10}",
            t["test"],
            t["status"].as_str().unwrap_or("?"),
            t["cpu_ms"].as_f64().unwrap_or(0.0),
            t["wall_ms"].as_f64().unwrap_or(0.0),
            isolette::format_size(t["memory_bytes"].as_u64().unwrap_or(0)),
        );
    }
    println!("verdict: {}", report["verdict"].as_str().unwrap_or("?"));
    Ok(())
}
