//! `/bin/true` in a sandbox, N times in a row in this process, each run's latency printed
//! in microseconds, one per line: the Rust side of `bench/python.py`, which times the same
//! loop through the Python binding in the same run.
//!
//! `cargo run --release --example run_loop -- IMAGE_DIR N`

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: run_loop IMAGE_DIR N".into());
    };
    let image = isolette::Image::open(dir)?;
    let builder = isolette::Sandbox::builder(&image).memory(256 << 20).pids(64);
    // `RUN_LOOP_SPAWN=1`: through `spawn()` and `wait()`, as the bindings do.
    let spawn = std::env::var_os("RUN_LOOP_SPAWN").is_some_and(|v| !v.is_empty());
    // `RUN_LOOP_CANCELLER=1`: a `Canceller` per run, as the Python binding's `run` has.
    let canceller = std::env::var_os("RUN_LOOP_CANCELLER").is_some_and(|v| !v.is_empty());
    for _ in 0..n.parse::<usize>()? {
        let started = Instant::now();
        let out = match (spawn, canceller) {
            (true, _) => builder.spawn(["/bin/true"])?.wait()?,
            (false, true) => builder.clone().canceller(&isolette::Canceller::new()?).run(["/bin/true"])?,
            (false, false) => builder.run(["/bin/true"])?,
        };
        let took = started.elapsed();
        if out.status != isolette::Status::Ok {
            return Err(format!("/bin/true ended {}", out.status).into());
        }
        println!("{}", took.as_micros());
    }
    Ok(())
}
