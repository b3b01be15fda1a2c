//! Per-run cost as a function of how much memory the calling process holds.
//! `cargo bench --features cli --bench caller_memory` (as root, busybox test image).
use std::path::PathBuf;
use std::time::{Duration, Instant};

use isolette::{Image, Sandbox, Status};

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rootfs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/images/busybox");
    let image = Image::open(&rootfs).unwrap();
    let b = Sandbox::builder(&image).memory(256 << 20).pids(64);
    let mut held: Vec<Vec<u8>> = Vec::new();
    for mib in [0usize, 20, 200, 1024, 2048] {
        let have: usize = held.iter().map(Vec::len).sum::<usize>() >> 20;
        if mib > have {
            let mut v = vec![0u8; (mib - have) << 20];
            for i in (0..v.len()).step_by(4096) {
                v[i] = 1;
            }
            held.push(v);
        }
        let mut times: Vec<Duration> = (0..105)
            .map(|_| {
                let t = Instant::now();
                let out = b.run(["/bin/true"]).unwrap();
                assert_eq!(out.status, Status::Ok);
                t.elapsed()
            })
            .skip(5)
            .collect();
        times.sort();
        println!("caller holds {mib:>5} MiB: p50 {:.3} ms", times[50].as_secs_f64() * 1e3);
    }
}
