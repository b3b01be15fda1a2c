//! System calls: the layer above the vocabulary's plain data, and with the clone engine
//! one of the two layers allowed `unsafe` (`docs/ARCHITECTURE.md`).
//!
//! # Safety
//!
//! Every function here is safe to call: each `unsafe` block inside wraps one system call
//! (or a `pre_exec` hook of a helper program, or the slot's leaked pointer) whose
//! arguments the function's own types make valid (`&CStr`, owned or borrowed fds, integers, structs that outlive the call).
//! The one exception is [`clone3_on_stack`], `unsafe` itself: its caller (the clone
//! engine, `spawn/`) promises what the child may touch.
//!
//! - `raw.rs`: system calls by inline assembly, with no libc and no `errno`: for the
//!   sandbox's first process (which shares the caller's memory) and the init binary, which
//!   includes the file by path.
//! - `call.rs`: one allocation-free wrapper per call, over `raw.rs`, for the clone engine.
//! - `fd.rs`: the parent side's fd helpers (fds above the ones the child moves, fds passed
//!   over sockets, terminals), exit and fork hooks, scheduling.
//! - `exec.rs`: what helper programs (`nft`, `ip`, `slirp4netns`) do between their fork
//!   and exec, each a safe function over a prepared `Command`.
//! - `slot.rs`: an atomic slot of leaked values, which the runtime's per-process values
//!   are made of.

mod call;
mod exec;
mod fd;
#[allow(dead_code)] // Shared with the init binary, which uses what the library does not.
pub(crate) mod raw;
mod slot;

pub(crate) use call::*;
pub(crate) use exec::*;
pub(crate) use fd::*;
pub(crate) use slot::*;
