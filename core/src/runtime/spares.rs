//! Things made ahead of a caller's next run, on the background thread: spare cgroups
//! (`cgroup/mod.rs`) and spare network namespaces (`network/spare.rs`).
//!
//! A spare serves one run and is never reused. At most [`MAX`] of a kind are kept, about
//! one per caller thread running at once. A flush (`cleanup()`, the exit handler) drops
//! them and bumps a generation, so a spare whose making was under way meanwhile is dropped
//! too, not kept. Per process (`forked.rs`): a child of `fork` starts with none.

use std::sync::{Mutex, MutexGuard};

use super::background::{self, Flush};
use super::forked::ProcessLocal;

/// Spares kept at most of one kind.
const MAX: usize = 2;

/// Spares of one kind, each made for a key (a cgroup's limits) and taken only for that key.
pub(crate) struct Spares<K: 'static, T: 'static> {
    state: ProcessLocal<Mutex<State<K, T>>>,
}

struct State<K, T> {
    ready: Vec<(K, T)>,
    /// Bumped by every flush, under the lock.
    generation: u64,
    /// Whether a flush of this process clears these spares yet.
    registered: bool,
}

impl<K, T> Default for State<K, T> {
    fn default() -> Self {
        State { ready: Vec::new(), generation: 0, registered: false }
    }
}

impl<K: PartialEq + Send + 'static, T: Send + 'static> Spares<K, T> {
    /// None yet.
    pub(crate) const fn new() -> Spares<K, T> {
        Spares { state: ProcessLocal::new(Default::default) }
    }

    fn lock(&self) -> MutexGuard<'_, State<K, T>> {
        self.state.get().lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A spare made for `key`, if one is ready.
    pub(crate) fn take(&self, key: &K) -> Option<T> {
        let mut state = self.lock();
        let i = state.ready.iter().position(|(k, _)| k == key)?;
        Some(state.ready.swap_remove(i).1)
    }

    /// Has a spare for `key` made by `make` on the background thread (started if need
    /// be), unless [`MAX`] are ready; `None` from `make` means it could not be made.
    pub(crate) fn prepare(&'static self, key: K, make: impl FnOnce(&K) -> Option<T> + Send + 'static) {
        let generation = {
            let mut state = self.lock();
            if !std::mem::replace(&mut state.registered, true) {
                background::on_flush(self);
            }
            state.generation
        };
        background::run_later(move || {
            if self.lock().ready.len() >= MAX {
                return;
            }
            let Some(made) = make(&key) else { return };
            let mut state = self.lock();
            if state.generation == generation && state.ready.len() < MAX {
                state.ready.push((key, made));
            }
            // Otherwise `made` drops here, after the lock.
        });
    }
}

impl<K: PartialEq + Send + 'static, T: Send + 'static> Flush for Spares<K, T> {
    fn clear(&self) {
        if !self.state.is_made() {
            return;
        }
        let taken = {
            let mut state = self.lock();
            state.generation += 1;
            std::mem::take(&mut state.ready)
        };
        drop(taken);
    }
}
