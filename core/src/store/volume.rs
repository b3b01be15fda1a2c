//! Named volumes: directories the store owns, bound into sandboxes, whose files outlive
//! the runs (Docker's volumes, the permanent storage of a playground).
//!
//! On disk, under the store's `volumes/<name>/`:
//! - `volume.json`: the record (name, creation time, size cap);
//! - `data/`: the files, for a volume without a cap;
//! - with a cap, `disk.ext4` (a sparse file holding an ext4 filesystem of that size),
//!   loop-mounted on `fs/` by `mount(8)`, with the files in `fs/data/`. The mount belongs to
//!   the store, not to a run: it is made when the volume is created or first opened after
//!   a reboot, and unmounted when the volume is removed. A write past the cap fails with
//!   `ENOSPC` inside the sandbox.
//!
//! A [`Volume`] holds a shared `flock` on its directory while it (or a builder or a run
//! using it) lives; [`Store::remove_volume`] takes it exclusively without waiting, so a
//! volume in use is never removed.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::Store;
use crate::error::{Error, Result};
use crate::image::Lease;

/// Smallest size cap: an ext4 filesystem with room for its own metadata and some files.
const MIN_CAP: u64 = 4 << 20;

/// What the store knows of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VolumeRecord {
    /// The volume's name.
    pub name: String,
    /// When it was created, in seconds since the Unix epoch.
    pub created: u64,
    /// Its size cap in bytes, if it has one.
    pub size_cap: Option<u64>,
}

/// A volume opened for mounting into sandboxes ([`SandboxBuilder::volume`]): while it, or a
/// builder or run it was given to, lives, the volume cannot be removed.
///
/// [`SandboxBuilder::volume`]: crate::SandboxBuilder::volume
#[derive(Debug, Clone)]
pub struct Volume {
    name: String,
    data: PathBuf,
    lease: Lease,
}

impl Volume {
    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host directory that holds its files (what is bound into sandboxes).
    pub fn path(&self) -> &Path {
        &self.data
    }

    pub(crate) fn lease(&self) -> Lease {
        self.lease.clone()
    }
}

impl Store {
    fn volume_dir(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.root.join("volumes").join(name))
    }

    /// Creates volume `name`, empty, with an optional size cap in bytes (which needs root:
    /// it is a loop-mounted filesystem of its own). An existing name is an error.
    pub fn create_volume(&self, name: &str, size_cap: Option<u64>) -> Result<VolumeRecord> {
        let dir = self.volume_dir(name)?;
        if let Some(cap) = size_cap {
            if cap < MIN_CAP {
                return Err(Error::config(format!("a volume's size cap must be at least 4M (got {cap} bytes)")));
            }
            if !nix::unistd::geteuid().is_root() {
                return Err(Error::config("a volume with a size cap needs root (it is a loop-mounted filesystem)"));
            }
        }
        let _lock = self.lock()?;
        self.clean_tmp();
        if dir.exists() {
            return Err(Error::config(format!("volume `{name}` exists already; `isolette volume rm {name}` first")));
        }
        // Made in tmp/ and renamed into place: a failure leaves nothing under volumes/.
        let tmp = super::TempDir::new(&self.root.join("tmp"), "volume")?;
        let created = crate::names::now();
        let record = VolumeRecord { name: name.to_string(), created, size_cap };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::io("encode", "volume.json", e.into()))?;
        let path = tmp.path().join("volume.json");
        std::fs::write(&path, json).map_err(|e| Error::io("write", &path, e))?;
        match size_cap {
            None => open_data_dir(&tmp.path().join("data"))?,
            Some(cap) => {
                let disk = tmp.path().join("disk.ext4");
                let file = File::create(&disk).map_err(|e| Error::io("create", &disk, e))?;
                file.set_len(cap).map_err(|e| Error::io("truncate", &disk, e))?;
                drop(file);
                tool(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&disk), "mkfs.ext4")?;
            }
        }
        let parent = self.root.join("volumes");
        std::fs::create_dir_all(&parent).map_err(|e| Error::io("mkdir", &parent, e))?;
        std::fs::rename(tmp.path(), &dir).map_err(|e| Error::io("rename", &dir, e))?;
        if size_cap.is_some() {
            mount_capped(&dir)?;
        }
        Ok(record)
    }

    /// Opens volume `name` for mounting (a capped one is mounted first if a reboot
    /// unmounted it).
    pub fn volume(&self, name: &str) -> Result<Volume> {
        let record = self.volume_record(name)?;
        let dir = self.volume_dir(name)?;
        let file = File::open(&dir).map_err(|e| Error::io("open", &dir, e))?;
        let lock = Flock::lock(file, FlockArg::LockShared).map_err(|(_, e)| Error::io("flock", &dir, e.into()))?;
        // A removal that held the directory before us has renamed it away by now.
        let held = lock.metadata().map_err(|e| Error::io("stat", &dir, e))?;
        let same = std::fs::metadata(&dir).is_ok_and(|now| (now.dev(), now.ino()) == (held.dev(), held.ino()));
        if !same {
            return Err(Error::config(format!("volume `{name}` was removed while being opened")));
        }
        let data = match record.size_cap {
            None => dir.join("data"),
            Some(_) => {
                // One opener at a time checks and mounts (the disk image's own lock).
                let disk = dir.join("disk.ext4");
                let file = File::open(&disk).map_err(|e| Error::io("open", &disk, e))?;
                let _mounting =
                    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::io("flock", &disk, e.into()))?;
                if !is_mount_point(&dir.join("fs"))? {
                    mount_capped(&dir)?;
                }
                dir.join("fs/data")
            }
        };
        if !data.is_dir() {
            return Err(Error::config(format!("volume `{name}` is damaged: `{}` is missing", data.display())));
        }
        Ok(Volume { name: record.name, data, lease: Lease::new(vec![lock]) })
    }

    /// The record of volume `name`.
    pub fn volume_record(&self, name: &str) -> Result<VolumeRecord> {
        let path = self.volume_dir(name)?.join("volume.json");
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::config(format!("no volume `{name}`; create it with `isolette volume create {name}`"))
            }
            _ => Error::io("read", &path, e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::config(format!("volume `{name}`: damaged record: {e}")))
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<VolumeRecord>> {
        let dir = self.root.join("volumes");
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(out) };
        for entry in entries.flatten() {
            if let Some(name) = entry.file_name().to_str()
                && let Ok(record) = self.volume_record(name)
            {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Bytes the files of volume `name` take.
    pub fn volume_usage(&self, name: &str) -> Result<u64> {
        let record = self.volume_record(name)?;
        let dir = self.volume_dir(name)?;
        Ok(super::dir_size(&dir.join(if record.size_cap.is_some() { "fs/data" } else { "data" })))
    }

    /// Removes volume `name` and its files; refused while a [`Volume`] of it is open (a
    /// run uses it).
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        let record = self.volume_record(name)?;
        let dir = self.volume_dir(name)?;
        let _lock = self.lock()?;
        let file = File::open(&dir).map_err(|e| Error::io("open", &dir, e))?;
        let Ok(_held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
            return Err(Error::config(format!("volume `{name}` is in use by a run; stop it first")));
        };
        if record.size_cap.is_some() && is_mount_point(&dir.join("fs"))? {
            tool(Command::new("umount").arg(dir.join("fs")), "umount")?;
        }
        // Out of sight first (one rename), then deleted.
        let doomed = self.root.join("tmp").join(format!("volume-rm-{name}"));
        std::fs::rename(&dir, &doomed).map_err(|e| Error::io("rename", &dir, e))?;
        std::fs::remove_dir_all(&doomed).map_err(|e| Error::io("remove", &doomed, e))
    }
}

fn check_name(name: &str) -> Result<()> {
    crate::names::check("volume", name)
}

/// Makes `dir` (if missing) writable by whatever user a sandbox runs as.
fn open_data_dir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("mkdir", dir, e)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(|e| Error::io("chmod", dir, e))
}

/// Loop-mounts a capped volume's filesystem on its `fs/` (no devices, no set-uid).
fn mount_capped(dir: &Path) -> Result<()> {
    let fs = dir.join("fs");
    match std::fs::create_dir(&fs) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("mkdir", &fs, e)),
    }
    tool(Command::new("mount").args(["-o", "loop,nosuid,nodev"]).arg(dir.join("disk.ext4")).arg(&fs), "mount")?;
    open_data_dir(&fs.join("data"))
}

/// Whether `path` is a mount point: it lies on another device than its parent.
fn is_mount_point(path: &Path) -> Result<bool> {
    let Ok(here) = std::fs::metadata(path) else { return Ok(false) };
    let parent = path.parent().unwrap_or(path);
    let up = std::fs::metadata(parent).map_err(|e| Error::io("stat", parent, e))?;
    Ok(here.dev() != up.dev())
}

/// Runs a system tool; its failure is an error with what it said.
fn tool(cmd: &mut Command, name: &str) -> Result<()> {
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::config(format!("`{name}` is missing; install e2fsprogs and mount")),
        _ => Error::io("run", name, e),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::io(
        "run",
        name,
        std::io::Error::other(format!("{name} failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["data", "a", "my-vol_1.x", "0"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", ".a", "a/b", "..", "a b", "ä", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
