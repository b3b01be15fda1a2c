//! Custom seccomp policies (names and an action): a compiled filter or a typed config
//! error, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use isolette::{Error, SeccompAction, SeccompPolicy};
use libfuzzer_sys::fuzz_target;

mod common;

#[derive(Debug, Arbitrary)]
struct Input {
    allow: bool,
    errno: bool,
    names: Vec<String>,
    /// Also try real names, so the fuzzer reaches compilation, not only name lookup.
    real: Vec<u8>,
}

const REAL: &[&str] = &["read", "write", "ptrace", "mount", "clone", "ioctl", "socket", "getppid", "exit_group", "bpf"];

fuzz_target!(|input: Input| {
    let mut names = input.names;
    names.extend(input.real.iter().map(|&i| REAL[usize::from(i) % REAL.len()].to_string()));
    let policy = if input.allow { SeccompPolicy::allow(&names) } else { SeccompPolicy::deny(&names) };
    let policy = match policy {
        Ok(p) => p,
        Err(Error::Config(_)) => return,
        Err(e) => panic!("not a config error: {e}"),
    };
    let action = if input.errno { SeccompAction::Errno } else { SeccompAction::Kill };
    let b = isolette::Sandbox::builder(common::image()).seccomp(policy.with_action(action));
    match b.check(["/bin/true"]) {
        Ok(()) | Err(Error::Config(_)) => {}
        Err(e) => panic!("not a config error: {e}"),
    }
});
