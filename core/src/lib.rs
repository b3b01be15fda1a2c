//! isolette: run untrusted code in a fresh Linux sandbox per request, and get back an exact
//! verdict.
//!
//! An [`Image`] (one or more unpacked layer directories) is opened once; [`Sandbox::run`]
//! or a [`SandboxBuilder`] then runs a command in a new sandbox made from it: an overlay
//! root with a size-limited writable layer, new user (when not root), pid, mount,
//! network, ipc, uts and cgroup namespaces, an unprivileged user with no capabilities and
//! `no_new_privs`. Nothing of the sandbox outlives the run.
//!
//! ```no_run
//! use isolette::{Image, Sandbox, Status};
//! use std::time::Duration;
//!
//! let image = Image::open("images/python")?;
//! let out = Sandbox::builder(&image)
//!     .wall_time(Duration::from_secs(3))
//!     .stdin("21\n")
//!     .run(["python3", "-c", "print(int(input()) * 2)"])?;
//! assert_eq!(out.status, Status::Ok);
//! assert_eq!(out.stdout, b"42\n");
//! # Ok::<(), isolette::Error>(())
//! ```
#![deny(unsafe_code, missing_docs)]

// The layers, bottom to top; each imports only from the ones above it here
// (docs/ARCHITECTURE.md, kept true by tests/layers.rs).

// Vocabulary: plain data and rules, shared by every layer and the surfaces.
mod error;
mod limits;
pub mod names;
mod outcome;
// Shared with the init binary, which uses what the library does not.
#[allow(dead_code)]
mod proto;
mod units;

// System calls: the only `unsafe` besides the clone engine's.
#[allow(unsafe_code)]
mod sys;

// The per-process runtime.
mod runtime;

// Resources, each owning its request types.
#[cfg(feature = "store")]
pub mod build;
mod cancel;
mod cgroup;
mod image;
mod namespaces;
mod network;
#[cfg(feature = "store")]
mod registry;
mod rootfs;
mod seccomp;
mod stdio;
#[cfg(feature = "store")]
mod store;

// The request.
mod config;
mod plan;

// The clone engine.
#[allow(unsafe_code)]
mod spawn;

// The lifecycle.
mod pool;
mod run;
mod running;
mod supervise;

// The API.
#[cfg(feature = "store")]
mod builder;
mod gc;
mod host;
mod sandbox;

// Projects.
#[cfg(feature = "compose")]
pub mod compose;

pub use cancel::Canceller;
pub use cgroup::GcReport;
pub use config::{
    DEFAULT_MEMORY, DEFAULT_NOFILE, DEFAULT_OUTPUT_LIMIT, DEFAULT_PIDS, DEFAULT_SANDBOX_ID, DEFAULT_TMPFS_SIZE,
    DEFAULT_WALL_TIME, MountSpec,
};
pub use error::{Errno, Error, HostFeature, Result, Step};
pub use gc::gc;
pub use host::{CgroupLayout, HostReport};
pub use image::{Image, ImageConfig};
pub use network::{EgressRule, NamedNetwork, Network, NetworkRecord, Networks, Protocol, Publish, SharedNetwork};
pub use outcome::{Field, Outcome, Status};
pub use pool::Pool;
#[cfg(feature = "store")]
pub use registry::Reference;
#[cfg(feature = "registry")]
pub use registry::{
    Credentials, RegistryOptions, Transfer, TransferState, credentials_for, docker_config_path, login, logout,
    store_credentials,
};
pub use running::Running;
pub use runtime::cleanup;
pub use sandbox::{Sandbox, SandboxBuilder, pipe};
pub use seccomp::{DEFAULT_DENY, SeccompAction, SeccompPolicy};
pub use stdio::{Output, SharedFd, Stdin};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use store::fuzzing;
#[cfg(feature = "store")]
pub use store::{ImageRecord, NewLayer, Progress, Store, StoredLayer, Volume, VolumeRecord};
pub use units::{
    NO_WALL_TIME, format_duration, format_size, parse_duration, parse_env, parse_signal, parse_size, parse_user,
    parse_wall_time,
};
