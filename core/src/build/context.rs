//! A build's context: the directory `COPY` and `ADD` take files from, less what
//! `.dockerignore` leaves out, and the digest of what a step selects, which keys its
//! cache entry.
//!
//! The digest covers, for each selected file in order: its path relative to the source,
//! its type, its permission bits (or the `--chmod` that replaces them), its size, a hash
//! of its content, a symlink's target, and its `security.capability`. Never its times,
//! inode or owner: a `touch` keeps the cache, a `chmod` or any change of content misses,
//! whatever the file's mtime says, and the same tree checked out under another umask
//! hits with `--chmod`.
//!
//! Content hashes are kept between builds by inode ([`Context::load_hashes`]): a file whose
//! device, inode, size, mtime and ctime are those it had when hashed is not read again.
//! The ctime is the kernel's and moves on every write and `chmod`, whatever the mtime is
//! set back to; a file changed in the last moments before it was hashed is never kept, so
//! a change in the same clock tick cannot hide.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::ignore::IgnoreRules;
use crate::error::{Error, Result};

/// A build's context directory, its ignore rules, and the content hashes known so far.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    /// An image's tree (`COPY --from`): its symlinks resolve inside it, as the image sees
    /// them, where a context's may not leave it at all.
    image: bool,
    ignore: IgnoreRules,
    hashes: Mutex<Hashes>,
}

/// Content hashes by (device, inode), with what the file looked like when hashed.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Hashes {
    files: HashMap<String, Stamp>,
    /// Files read this time (not answered from `files`).
    #[serde(skip)]
    read: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    /// The content's sha256, hex.
    hash: String,
}

/// How recent a change may be for its hash to be kept: more than the coarsest clock tick
/// the kernel stamps files with.
const SETTLED_NS: i128 = 50_000_000;

/// What a `COPY` or `ADD` source selects: the files, each with where it goes relative to
/// the destination, and their digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The files and directories, in the order they are copied.
    pub entries: Vec<Entry>,
    /// `sha256:` and 64 hex digits.
    pub digest: String,
    /// Files whose content was read to hash it (the others' hashes were known).
    pub read: u64,
}

/// One selected file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it is on the host.
    pub path: PathBuf,
    /// Where it goes, relative to the destination (empty for a source file copied to a
    /// file destination); its names are bytes, as the directory has them.
    pub rel: PathBuf,
    /// The digest of its record (hex): what tells which file changed.
    pub digest: String,
}

impl Context {
    /// The context at `root`, with the ignore file Docker would read: `DOCKERFILE.dockerignore`
    /// beside a Dockerfile named `dockerfile` when there is one, else `.dockerignore` in
    /// the root.
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<Context> {
        let root = root.canonicalize().map_err(|e| Error::io("open the build context", root, e))?;
        if !root.is_dir() {
            return Err(Error::config(format!("the build context {} is not a directory", root.display())));
        }
        let beside = dockerfile.map(|d| {
            let mut name = d.as_os_str().to_owned();
            name.push(".dockerignore");
            PathBuf::from(name)
        });
        let file = beside.filter(|p| p.is_file()).unwrap_or_else(|| root.join(".dockerignore"));
        let ignore = match std::fs::read_to_string(&file) {
            Ok(text) => IgnoreRules::parse(&text, &file.to_string_lossy())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(e) => return Err(Error::io("read", &file, e)),
        };
        Ok(Context { root, image: false, ignore, hashes: Mutex::new(Hashes::default()) })
    }

    /// An image's tree to copy from (`COPY --from`): no ignore rules, and symlinks that
    /// resolve inside it as the image sees them (`/usr/bin/java` to `/etc/alternatives/...`).
    pub(crate) fn tree(root: &Path) -> Result<Context> {
        let root = root.canonicalize().map_err(|e| Error::io("open", root, e))?;
        Ok(Context { root, image: true, ignore: IgnoreRules::default(), hashes: Mutex::new(Hashes::default()) })
    }

    /// `rel` resolved as the image sees it: inside the root, its last part followed when
    /// `follow`.
    fn in_image(&self, rel: &Path, follow: bool) -> Result<PathBuf> {
        super::tree::resolve_in_root(&self.root, &Path::new("/").join(rel), follow)
    }

    /// Takes the content hashes `file` kept from an earlier build of this context (none
    /// when it does not exist or cannot be read: they are only a shortcut).
    pub fn load_hashes(&self, file: &Path) {
        if let Ok(bytes) = std::fs::read(file)
            && let Ok(loaded) = serde_json::from_slice::<Hashes>(&bytes)
        {
            self.lock().files = loaded.files;
        }
    }

    /// Keeps the content hashes in `file` for the next build (written whole or not at all).
    pub fn save_hashes(&self, file: &Path) -> Result<()> {
        let bytes =
            serde_json::to_vec(&*self.lock()).map_err(|e| Error::io("encode", file, std::io::Error::other(e)))?;
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, file).map_err(|e| Error::io("rename", file, e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hashes> {
        self.hashes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The context's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What `sources` (paths relative to the context, `*`, `?` and `[...]` allowed in the
    /// last part) select, with `chmod` in place of the files' own permission bits. A source
    /// outside the context (`../x`, or a symlink that leads out of it), or one that
    /// selects nothing, is an error naming it.
    pub fn select(&self, sources: &[String], chmod: Option<u32>) -> Result<Selection> {
        let mut entries = Vec::new();
        let mut hasher = Sha256::new();
        let read_before = self.lock().read;
        for source in sources {
            let matched = self.expand(source)?;
            if matched.is_empty() {
                return Err(Error::config(format!(
                    "COPY {source}: no such file in the build context (or .dockerignore leaves it out)"
                )));
            }
            for rel in matched {
                let mut path = self.inside(&rel, source)?;
                let mut meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
                if meta.file_type().is_symlink() {
                    // A source named itself is followed (inside the context only), as BuildKit
                    // does; symlinks below a directory are copied as they are.
                    path = if self.image {
                        self.in_image(&rel, true)?
                    } else {
                        path.canonicalize().ok().filter(|real| real.starts_with(&self.root)).ok_or_else(|| {
                            Error::config(format!("COPY {source}: a symlink leads outside the build context"))
                        })?
                    };
                    meta = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
                }
                if meta.is_dir() {
                    // A directory's contents are copied, not the directory itself.
                    self.walk(&path, &rel, Path::new(""), chmod, &mut entries, &mut hasher)?;
                } else {
                    let name = match rel.file_name() {
                        Some(name) if sources.len() > 1 || has_pattern(source) => PathBuf::from(name),
                        _ => PathBuf::new(),
                    };
                    let digest = self.record(&path, &name, &meta, chmod, &mut hasher)?;
                    entries.push(Entry { path, rel: name, digest });
                }
            }
            hasher.update([0xff]); // between sources
        }
        let read = self.lock().read - read_before;
        Ok(Selection { entries, digest: format!("sha256:{}", hex::encode(hasher.finalize())), read })
    }

    /// The context paths (relative, cleaned) a source names: itself, or what its pattern
    /// matches in its directory; never an ignored one.
    fn expand(&self, source: &str) -> Result<Vec<PathBuf>> {
        let rel = clean_inside(source)
            .ok_or_else(|| Error::config(format!("COPY {source}: the source is outside the build context")))?;
        if !has_pattern(&rel) {
            let at = if self.image { self.in_image(Path::new(&rel), false)? } else { self.root.join(&rel) };
            let exists = std::fs::symlink_metadata(at).is_ok();
            let kept = exists && (rel == "." || !self.ignore.is_ignored(&rel));
            return Ok(if kept { vec![PathBuf::from(rel)] } else { vec![] });
        }
        let (dir, pattern) = rel.rsplit_once('/').unwrap_or((".", &rel));
        if has_pattern(dir) {
            return Err(Error::config(format!("COPY {source}: patterns are taken in the last part of a source only")));
        }
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::config(format!("COPY {source}: {}", e.kind())))?
            .compile_matcher();
        let dir_path = self.inside(Path::new(dir), source)?;
        let mut names: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(&dir_path).map_err(|e| Error::io("list", &dir_path, e))? {
            let name = entry.map_err(|e| Error::io("list", &dir_path, e))?.file_name();
            let rel = if dir == "." { PathBuf::from(&name) } else { Path::new(dir).join(&name) };
            if glob.is_match(Path::new(&name)) && !self.ignore.is_ignored_path(&rel) {
                names.push(rel);
            }
        }
        names.sort();
        Ok(names)
    }

    /// `rel`'s host path, which must stay inside the context once its symlinks resolve.
    fn inside(&self, rel: &Path, source: &str) -> Result<PathBuf> {
        if rel == Path::new(".") {
            return Ok(self.root.clone());
        }
        if self.image {
            return self.in_image(rel, false);
        }
        let path = self.root.join(rel);
        // The parent resolved: the last part itself may be a symlink, copied as one.
        let parent = path.parent().unwrap_or(&self.root);
        let real = parent.canonicalize().map_err(|e| Error::io("resolve", parent, e))?;
        if !real.starts_with(&self.root) {
            return Err(Error::config(format!("COPY {source}: a symlink leads outside the build context")));
        }
        Ok(real.join(path.file_name().unwrap_or_default()))
    }

    /// One entry's record in the digest: path, type, permission bits, size, content hash,
    /// symlink target, `security.capability`; fields delimited. Returns the record's own
    /// digest (hex), which goes into `all`.
    fn record(
        &self,
        path: &Path,
        rel: &Path,
        meta: &std::fs::Metadata,
        chmod: Option<u32>,
        all: &mut Sha256,
    ) -> Result<String> {
        let mut hasher = Sha256::new();
        let kind = meta.file_type();
        let kind_byte = if kind.is_file() {
            b'f'
        } else if kind.is_dir() {
            b'd'
        } else if kind.is_symlink() {
            b'l'
        } else if kind.is_fifo() {
            b'p'
        } else {
            return Err(Error::config(format!(
                "{}: a device or socket cannot be copied into an image",
                path.display()
            )));
        };
        let mode = match (chmod, kind.is_symlink()) {
            (_, true) => 0o777,
            (Some(m), false) => m,
            (None, false) => meta.mode() & 0o7777,
        };
        hasher.update(rel.as_os_str().as_bytes());
        hasher.update([0, kind_byte]);
        hasher.update(mode.to_le_bytes());
        hasher.update(meta.size().to_le_bytes());
        if kind.is_file() {
            hasher.update(self.content_hash(path, meta)?.as_bytes());
        }
        if kind.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| Error::io("readlink", path, e))?;
            hasher.update(target.as_os_str().as_encoded_bytes());
        }
        if !kind.is_symlink() {
            // A file capability changes what the program may do: part of the content.
            if let Ok(Some(cap)) = xattr::get(path, "security.capability") {
                hasher.update(&cap);
            }
        }
        let digest = hasher.finalize();
        all.update(digest);
        Ok(hex::encode(&digest[..8]))
    }

    /// The sha256 (hex) of a regular file's content: known from an earlier look when the
    /// file is as it was then, else read (and kept, once its last change has settled).
    fn content_hash(&self, path: &Path, meta: &std::fs::Metadata) -> Result<String> {
        let key = format!("{}:{}", meta.dev(), meta.ino());
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        let stamp = |hash: String| Stamp {
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            hash,
        };
        if let Some(known) = self.lock().files.get(&key)
            && *known == stamp(known.hash.clone())
        {
            return Ok(known.hash.clone());
        }
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let mut content = Sha256::new();
        std::io::copy(&mut file, &mut content).map_err(|e| Error::io("read", path, e))?;
        let hash = hex::encode(content.finalize());
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        let fresh = stamp(hash.clone());
        let mut hashes = self.lock();
        hashes.read += 1;
        if fresh.ctime_ns + SETTLED_NS < now && fresh.mtime_ns + SETTLED_NS < now {
            hashes.files.insert(key, fresh);
        } else {
            hashes.files.remove(&key);
        }
        Ok(hash)
    }

    /// Records everything below the directory `dir` (context path `rel`), sorted by name,
    /// skipping what the ignore rules leave out. Names are bytes, UTF-8 or not.
    fn walk(
        &self,
        dir: &Path,
        rel: &Path,
        dest: &Path,
        chmod: Option<u32>,
        entries: &mut Vec<Entry>,
        hasher: &mut Sha256,
    ) -> Result<()> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
            .map_err(|e| Error::io("list", dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io("list", dir, e))?;
        names.sort();
        for name in names {
            let child_rel = if rel == Path::new(".") { PathBuf::from(&name) } else { rel.join(&name) };
            if self.ignore.is_ignored_path(&child_rel) {
                continue;
            }
            let child_dest = dest.join(&name);
            let path = dir.join(&name);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
            let digest = self.record(&path, &child_dest, &meta, chmod, hasher)?;
            entries.push(Entry { path: path.clone(), rel: child_dest.clone(), digest });
            if meta.is_dir() {
                self.walk(&path, &child_rel, &child_dest, chmod, entries, hasher)?;
            }
        }
        Ok(())
    }
}

fn has_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `source` cleaned as a path relative to the context root (a leading `/` is the root),
/// or `None` when `..` would leave it.
fn clean_inside(source: &str) -> Option<String> {
    let (path, left) = super::ignore::clean_parts(source);
    (!left).then_some(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("app/sub")).unwrap();
        std::fs::write(p.join("app/main.py"), "print(1)\n").unwrap();
        std::fs::write(p.join("app/sub/util.py"), "x = 2\n").unwrap();
        std::fs::write(p.join("app/notes.md"), "notes\n").unwrap();
        std::fs::write(p.join("a.txt"), "a\n").unwrap();
        std::fs::write(p.join("b.txt"), "b\n").unwrap();
        std::os::unix::fs::symlink("main.py", p.join("app/link")).unwrap();
        std::fs::write(p.join(".dockerignore"), "**/*.md\n").unwrap();
        dir
    }

    fn digest(ctx: &Context, sources: &[&str], chmod: Option<u32>) -> String {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        ctx.select(&sources, chmod).unwrap().digest
    }

    #[test]
    fn selection_follows_docker() {
        let dir = tree();
        let ctx = Context::open(dir.path(), None).unwrap();
        let sel = ctx.select(&["app".into()], None).unwrap();
        let rels: Vec<&str> = sel.entries.iter().map(|e| e.rel.to_str().unwrap()).collect();
        assert_eq!(rels, ["link", "main.py", "sub", "sub/util.py"], "the directory's contents, less the ignored");
        let sel = ctx.select(&["*.txt".into()], None).unwrap();
        let rels: Vec<&str> = sel.entries.iter().map(|e| e.rel.to_str().unwrap()).collect();
        assert_eq!(rels, ["a.txt", "b.txt"]);
        let sel = ctx.select(&["/a.txt".into()], None).unwrap();
        assert_eq!(sel.entries[0].rel, Path::new(""), "one file to a file destination");
    }

    #[test]
    fn names_are_bytes() {
        let dir = tree();
        let odd = std::ffi::OsStr::from_bytes(b"\xffodd.txt");
        std::fs::write(dir.path().join("app").join(odd), "odd\n").unwrap();
        let ctx = Context::open(dir.path(), None).unwrap();
        let sel = ctx.select(&["app".into()], None).unwrap();
        assert!(sel.entries.iter().any(|e| e.rel.as_os_str() == odd), "a name that is not UTF-8, as it is");
        let sel = ctx.select(&["app/*.txt".into()], None).unwrap();
        assert_eq!(sel.entries.len(), 1);
        assert_eq!(sel.entries[0].rel.as_os_str(), odd, "and matched by a pattern");
    }

    #[test]
    fn the_whole_context() {
        let dir = tree();
        let ctx = Context::open(dir.path(), None).unwrap();
        let sel = ctx.select(&[".".into()], None).unwrap();
        let rels: Vec<&str> = sel.entries.iter().map(|e| e.rel.to_str().unwrap()).collect();
        assert_eq!(
            rels,
            [".dockerignore", "a.txt", "app", "app/link", "app/main.py", "app/sub", "app/sub/util.py", "b.txt"]
        );
    }

    #[test]
    fn the_digest_follows_content_and_mode_not_times() {
        let dir = tree();
        let ctx = Context::open(dir.path(), None).unwrap();
        let main = dir.path().join("app/main.py");
        let first = digest(&ctx, &["app"], None);
        assert_eq!(first, digest(&ctx, &["app"], None), "stable");
        // touch: the cache holds.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options().write(true).open(&main).unwrap().set_modified(later).unwrap();
        assert_eq!(first, digest(&ctx, &["app"], None), "a touch keeps the cache");
        // chmod: a miss.
        std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o755)).unwrap();
        let chmodded = digest(&ctx, &["app"], None);
        assert_ne!(first, chmodded, "a chmod misses");
        // Same size, same restored mtime, other content: a miss.
        let mtime = std::fs::metadata(&main).unwrap().modified().unwrap();
        std::fs::write(&main, "print(2)\n").unwrap();
        std::fs::File::options().write(true).open(&main).unwrap().set_modified(mtime).unwrap();
        assert_ne!(chmodded, digest(&ctx, &["app"], None), "new content under the old mtime misses");
        // An ignored file changes nothing.
        let before = digest(&ctx, &["app"], None);
        std::fs::write(dir.path().join("app/notes.md"), "other notes\n").unwrap();
        assert_eq!(before, digest(&ctx, &["app"], None));
    }

    #[test]
    fn known_hashes_spare_the_reads_and_never_hide_a_change() {
        let dir = tree();
        // Let the files' last changes settle, as they have in a real context.
        std::thread::sleep(std::time::Duration::from_millis(2 * (SETTLED_NS / 1_000_000) as u64));
        let saved = dir.path().join("hashes.json");
        let first = Context::open(dir.path(), None).unwrap();
        let sel = first.select(&["app".into()], None).unwrap();
        assert_eq!(sel.read, 2, "main.py and sub/util.py read once");
        first.save_hashes(&saved).unwrap();
        let next = Context::open(dir.path(), None).unwrap();
        next.load_hashes(&saved);
        let again = next.select(&["app".into()], None).unwrap();
        assert_eq!((again.read, &again.digest), (0, &sel.digest), "nothing read, the same digest");
        // New content of the same size under the old mtime: the ctime moved, so it is read.
        let main = dir.path().join("app/main.py");
        let mtime = std::fs::metadata(&main).unwrap().modified().unwrap();
        std::fs::write(&main, "print(2)\n").unwrap();
        std::fs::File::options().write(true).open(&main).unwrap().set_modified(mtime).unwrap();
        let changed = next.select(&["app".into()], None).unwrap();
        assert_eq!(changed.read, 1);
        assert_ne!(changed.digest, sel.digest);
        // A broken hashes file is no hashes.
        std::fs::write(&saved, "not json").unwrap();
        let third = Context::open(dir.path(), None).unwrap();
        third.load_hashes(&saved);
        assert_eq!(third.select(&["app".into()], None).unwrap().read, 2);
    }

    #[test]
    fn with_chmod_the_umask_does_not_matter() {
        let (a, b) = (tree(), tree());
        for (dir, mode) in [(&a, 0o664), (&b, 0o644)] {
            for f in ["app/main.py", "app/sub/util.py"] {
                std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        let (ca, cb) = (Context::open(a.path(), None).unwrap(), Context::open(b.path(), None).unwrap());
        assert_ne!(digest(&ca, &["app"], None), digest(&cb, &["app"], None));
        assert_eq!(digest(&ca, &["app"], Some(0o644)), digest(&cb, &["app"], Some(0o644)), "--chmod hits");
    }

    #[test]
    fn sources_outside_the_context_are_refused() {
        let dir = tree();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let ctx = Context::open(dir.path(), None).unwrap();
        for (source, says) in [
            ("../x", "outside the build context"),
            ("app/../../x", "outside the build context"),
            ("out/secret", "symlink leads outside"),
            ("nope.txt", "no such file"),
            ("app/notes.md", "no such file"),
            ("*.none", "no such file"),
        ] {
            let e = ctx.select(&[source.to_string()], None).unwrap_err().to_string();
            assert!(e.contains(says), "{source}: {e}");
        }
    }

    #[test]
    fn an_ignore_file_beside_the_dockerfile_wins() {
        let dir = tree();
        std::fs::write(dir.path().join("build.Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("build.Dockerfile.dockerignore"), "a.txt\n").unwrap();
        let ctx = Context::open(dir.path(), Some(&dir.path().join("build.Dockerfile"))).unwrap();
        assert!(ctx.select(&["a.txt".into()], None).is_err());
        assert!(ctx.select(&["app/notes.md".into()], None).is_ok(), "the root's .dockerignore is not read");
    }
}
