//! A judge on isolette's Rust API, as an online judge would write one.
//!
//! ```sh
//! cargo run --release -p isolette-examples --bin judge -- \
//!     --problem examples/problems/a-plus-b --language python3 examples/samples/ok.py [--json]
//! ```
//!
//! A problem is a directory: `limits.json` (`cpu_time_ms`, `wall_time_ms`, `memory_bytes`,
//! `output_bytes`, `compare`: `exact` or `tokens`, `tests`) and `tests/N.in`, `tests/N.out`.
//! Languages are data (`examples/languages.json`): an image, the source's name, a compile
//! command with its own limits (or none), the run command, the seccomp policy.
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
    language: String,
    source: PathBuf,
    json: bool,
}

fn args() -> Result<Args, Failure> {
    let usage = "usage: judge --problem DIR --language NAME SOURCE [--json]";
    let (mut problem, mut language, mut source, mut json) = (None, None, None, false);
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--problem") => problem = it.next().map(PathBuf::from),
            Some("--language") => language = it.next().and_then(|l| l.into_string().ok()),
            Some("--json") => json = true,
            _ => source = Some(PathBuf::from(a)),
        }
    }
    match (problem, language, source) {
        (Some(problem), Some(language), Some(source)) => Ok(Args { problem, language, source, json }),
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

/// The image a language names: a directory under `$ISOLETTE_IMAGES` (default: the test
/// images the project's scripts build), or a path.
fn image(name: &str) -> Result<Image, Failure> {
    let dir = match std::env::var_os("ISOLETTE_IMAGES") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/images"),
    };
    let path = if name.contains('/') { PathBuf::from(name) } else { dir.join(name) };
    Ok(Image::open(&path)?)
}

/// A directory the sandbox's user may write (the judge runs as root).
fn open_dir() -> Result<tempfile::TempDir, Failure> {
    let dir = tempfile::Builder::new().prefix("judge-").tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
    Ok(dir)
}

fn judge() -> Result<(), Failure> {
    let args = args()?;
    let languages = read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("languages.json"))?;
    let lang = languages.get(&args.language).ok_or_else(|| {
        let known: Vec<&String> = languages.as_object().map(|m| m.keys().collect()).unwrap_or_default();
        format!("unknown language `{}`; known: {known:?}", args.language)
    })?;
    let limits = read_json(&args.problem.join("limits.json"))?;
    let image = image(lang["image"].as_str().ok_or("`image` must be a string")?)?;
    let seccomp = SeccompPolicy::parse(lang["seccomp"].as_str().unwrap_or("default"))?;

    // The submission, read-only at /submission; what the compiler makes, at /out.
    let submission = open_dir()?;
    let out = open_dir()?;
    let name = lang["source"].as_str().ok_or("`source` must be a string")?;
    std::fs::copy(&args.source, submission.path().join(name)).map_err(|e| format!("{}: {e}", args.source.display()))?;
    std::fs::set_permissions(submission.path().join(name), std::fs::Permissions::from_mode(0o644))?;
    let mounts = |b: SandboxBuilder, out_writable: bool| {
        b.mount(MountSpec { source: submission.path().into(), target: "/submission".into(), writable: false })
            .mount(MountSpec { source: out.path().into(), target: "/out".into(), writable: out_writable })
            .seccomp(seccomp.clone())
    };

    let mut report = json!({ "verdict": "ok", "compile": null, "tests": [] });
    if let Some(compile) = lang.get("compile").filter(|c| !c.is_null()) {
        let b = mounts(Sandbox::builder(&image), true)
            .cpu_time(ms(compile, "cpu_time_ms")?)
            .wall_time(ms(compile, "wall_time_ms")?)
            .memory(bytes(compile, "memory_bytes")?)
            .output_limit(bytes(compile, "output_bytes")?)
            .pids(64)
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

    let run = strings(&lang["run"], "run")?;
    let tokens = match limits["compare"].as_str() {
        Some("tokens") => true,
        Some("exact") => false,
        _ => return Err("`compare` must be \"exact\" or \"tokens\"".into()),
    };
    let box_ = mounts(Sandbox::builder(&image), false)
        .cpu_time(ms(&limits, "cpu_time_ms")?)
        .wall_time(ms(&limits, "wall_time_ms")?)
        .memory(bytes(&limits, "memory_bytes")?)
        .output_limit(bytes(&limits, "output_bytes")?)
        .workdir("/out")
        .stdout(Output::Pipe)
        .stderr(Output::Null);
    for n in 1..=bytes(&limits, "tests")? {
        let input = args.problem.join(format!("tests/{n}.in"));
        let expected = args.problem.join(format!("tests/{n}.out"));
        let mut running = box_.clone().stdin_from(Stdin::File(input)).spawn(&run)?;
        let shown = running.take_stdout().ok_or("stdout is piped")?;
        let same = compare(BufReader::new(shown), BufReader::new(File::open(&expected)?), tokens)?;
        let outcome = running.wait()?;
        let status = match outcome.status {
            isolette::Status::Ok if !same => "wrong_answer",
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
