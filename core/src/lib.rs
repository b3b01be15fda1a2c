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

mod cgroup;
mod config;
mod error;
#[allow(unsafe_code)]
mod forked;
mod host;
mod image;
mod limits;
mod names;
mod namespaces;
#[allow(unsafe_code)] // `pre_exec` of slirp4netns and of the helper inside the namespace
mod network;
mod outcome;
mod plan;
mod pool;
#[cfg(feature = "store")]
mod registry;
mod rootfs;
mod run;
mod running;
mod seccomp;
#[allow(unsafe_code)]
mod spawn;
mod stdio;
#[cfg(feature = "store")]
mod store;
mod supervise;
mod units;

pub use cgroup::{GcReport, cleanup, gc};
pub use config::{
    DEFAULT_MEMORY, DEFAULT_NOFILE, DEFAULT_OUTPUT_LIMIT, DEFAULT_PIDS, DEFAULT_SANDBOX_ID, DEFAULT_TMPFS_SIZE,
    DEFAULT_WALL_TIME, MountSpec, Output, Sandbox, SandboxBuilder, SharedFd, Stdin, pipe,
};
pub use error::{Errno, Error, HostFeature, Result, Step};
pub use host::{CgroupLayout, HostReport};
pub use image::{Image, ImageConfig};
pub use network::{EgressRule, NamedNetwork, Network, NetworkRecord, Networks, Protocol, Publish};
pub use outcome::{Outcome, Status};
pub use pool::Pool;
#[cfg(feature = "store")]
pub use registry::Reference;
#[cfg(feature = "registry")]
pub use registry::{
    Credentials, RegistryOptions, Transfer, TransferState, credentials_for, docker_config_path, login, logout,
    store_credentials,
};
pub use running::{Canceller, Running};
pub use seccomp::{DEFAULT_DENY, SeccompAction, SeccompPolicy};
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use store::fuzzing;
#[cfg(feature = "store")]
pub use store::{ImageRecord, Progress, Store, Volume, VolumeRecord};
pub use units::{format_duration, format_size, parse_duration, parse_env, parse_size};
