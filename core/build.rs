//! Builds `isolette-init`, the sandbox's pid 1 (`src/spawn/init/main.rs`): a static
//! program with no libc, which the library carries (`include_bytes!`) and execs from a
//! sealed memfd, so that no sandbox ever copies its caller's address space.

use std::path::PathBuf;
use std::process::Command;

const SOURCES: [&str; 3] = ["src/spawn/init/main.rs", "src/sys/raw.rs", "src/proto.rs"];

fn main() {
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("isolette-init");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args(["--edition", "2024", "--crate-name", "isolette_init", "--crate-type", "bin", "--target", &target])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "debuginfo=0", "-C", "strip=symbols"])
        .args(["-C", "relocation-model=static", "-C", "target-feature=+crt-static"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib", "-C", "link-arg=-static"])
        // No C runtime objects: on musl rustc would add its own crt1.o (and on glibc
        // targets the same flag would also take away rustc's own linker).
        .args(if target.ends_with("-musl") { &["-C", "link-self-contained=no"][..] } else { &[] })
        .args(["-C", "link-arg=-Wl,--gc-sections"])
        .arg("-o")
        .arg(&out)
        .arg(SOURCES[0])
        // The crate's RUSTFLAGS (sanitizers for fuzzing, say) are not for this program.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("run rustc for isolette-init");
    assert!(status.success(), "building isolette-init (src/spawn/init/main.rs) failed");
}
