//! The sandbox config as a whole: arbitrary builder inputs give a validated plan or a
//! typed error, never a panic (nothing is created: `check` only plans).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use isolette::{Error, MountSpec, Sandbox, SandboxBuilder};
use libfuzzer_sys::fuzz_target;

mod common;

#[derive(Debug, Arbitrary)]
struct Input {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    workdir: Option<String>,
    hostname: Option<String>,
    mounts: Vec<(String, String, bool)>,
    wall_ms: Option<u64>,
    cpu_ms: Option<u64>,
    memory: Option<u64>,
    pids: Option<u64>,
    fsize: Option<u64>,
    nofile: Option<u64>,
    stack: Option<u64>,
    cpus: Option<f64>,
    cpuset: Option<String>,
    tmpfs_size: Option<u64>,
    output_limit: Option<u64>,
    user: Option<(u32, u32)>,
    userns: Option<bool>,
    stdin: Option<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let mut b = Sandbox::builder(common::image());
    for (k, v) in input.env {
        b = b.env(k, v);
    }
    if let Some(w) = input.workdir {
        b = b.workdir(w);
    }
    if let Some(h) = input.hostname {
        b = b.hostname(h);
    }
    for (source, target, writable) in input.mounts {
        b = b.mount(MountSpec { source: source.into(), target: target.into(), writable });
    }
    if let Some(ms) = input.wall_ms {
        b = b.wall_time(Duration::from_millis(ms));
    }
    if let Some(ms) = input.cpu_ms {
        b = b.cpu_time(Duration::from_millis(ms));
    }
    type Set = fn(SandboxBuilder, u64) -> SandboxBuilder;
    let sized: [(Option<u64>, Set); 7] = [
        (input.memory, |b, v| b.memory(v)),
        (input.pids, |b, v| b.pids(v)),
        (input.fsize, |b, v| b.fsize(v)),
        (input.nofile, |b, v| b.nofile(v)),
        (input.stack, |b, v| b.stack(v)),
        (input.tmpfs_size, |b, v| b.tmpfs_size(v)),
        (input.output_limit, |b, v| b.output_limit(v)),
    ];
    for (value, set) in sized {
        if let Some(v) = value {
            b = set(b, v);
        }
    }
    if let Some(c) = input.cpus {
        b = b.cpus(c);
    }
    if let Some(set) = input.cpuset {
        b = b.cpuset(set);
    }
    if let Some((uid, gid)) = input.user {
        b = b.user(uid, gid);
    }
    if let Some(on) = input.userns {
        b = b.user_namespace(on);
    }
    if let Some(bytes) = input.stdin {
        b = b.stdin(bytes);
    }
    match b.check(input.argv) {
        Ok(()) | Err(Error::Config(_) | Error::Image { .. }) => {}
        Err(e) => panic!("unexpected kind of error: {e}"),
    }
});
