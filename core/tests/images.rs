//! Importing images into the layer store and running them by name, with fixtures that
//! `scripts/build-oci-fixtures.sh` makes with umoci and skopeo (hostile ones included).

mod common;

use std::path::{Path, PathBuf};

use common::{busybox, require_root, stdout};
use isolette::{Error, Sandbox, Status, Store};

fn fixtures() -> Option<PathBuf> {
    let dir = match std::env::var_os("ISOLETTE_OCI_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/oci-fixtures"),
    };
    dir.join("two-layer/index.json").exists().then_some(dir)
}

macro_rules! fixtures {
    () => {
        match fixtures() {
            Some(dir) => dir,
            None => {
                common::skip(module_path!(), "the OCI fixtures are missing; run scripts/build-oci-fixtures.sh");
                return;
            }
        }
    };
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

fn import(store: &Store, source: &Path, name: Option<&str>) -> isolette::Result<isolette::ImageRecord> {
    store.import(source, name, &mut |_| {})
}

fn layer_dirs(store: &Store) -> usize {
    std::fs::read_dir(store.dir().join("layers/sha256")).unwrap().flatten().filter(|e| e.path().is_dir()).count()
}

#[test]
fn whiteouts_and_image_config_apply() {
    require_root!();
    let _ = busybox!();
    let fx = fixtures!();
    let (_d, store) = new_store();
    let record = import(&store, &fx.join("two-layer"), None).unwrap();
    assert_eq!((record.name.as_str(), record.layers.len()), ("two-layer:latest", 2));
    let image = store.image("two-layer").unwrap();
    let b = Sandbox::builder(&image).entrypoint(Vec::<String>::new());
    let ls = |path: &str| stdout(&b.run(["/bin/ls", path]).unwrap());
    assert_eq!(ls("/data"), "keep.txt\n", "the whiteout hides gone.txt");
    assert_eq!(ls("/olddir"), "c.txt\n", "the opaque directory hides a.txt and b.txt");
    assert_eq!(ls("/etc"), "base.txt\ntop.txt\n");
    // Entrypoint ["/bin/sh", "-c"] + Cmd ["echo hi"], as the user 1000:1000, in /data, with GREETING.
    let out = Sandbox::builder(&image).run(Vec::<String>::new()).unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "hi\n".into()));
    let out = Sandbox::builder(&image).run(["/bin/hello; id -u; pwd"]).unwrap();
    assert_eq!(stdout(&out), "hello from two-layer\n1000\n/data\n", "{}", String::from_utf8_lossy(&out.stderr));
    // Every default can be overridden.
    let out = Sandbox::builder(&image)
        .env("GREETING", "bye")
        .workdir("/etc")
        .user(4242, 4242)
        .run(["/bin/hello; id -u; pwd"]);
    assert_eq!(stdout(&out.unwrap()), "bye from two-layer\n4242\n/etc\n");
}

#[test]
fn every_format_gives_the_same_image_and_shares_layers() {
    require_root!();
    let fx = fixtures!();
    let (_d, store) = new_store();
    let first = import(&store, &fx.join("two-layer"), None).unwrap();
    for (file, name) in [
        ("two-layer.oci.tar", "two:oci-gzip"),
        ("two-layer.oci-zstd.tar", "two:oci-zstd"),
        ("two-layer.oci-plain.tar", "two:oci-plain"),
        ("two-layer.docker.tar", "two:docker"),
    ] {
        let r = import(&store, &fx.join(file), Some(name)).unwrap();
        assert_eq!((r.id.as_str(), &r.layers), (first.id.as_str(), &first.layers), "{file}");
    }
    assert_eq!(layer_dirs(&store), 2, "one copy of each layer, whatever its compression");
    let shared = import(&store, &fx.join("shared-base"), Some("shared:1")).unwrap();
    assert_eq!(shared.layers[0], first.layers[0]);
    assert_eq!(layer_dirs(&store), 3, "the shared base was not unpacked again");
    let names: Vec<String> = store.list().unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    // A docker archive names itself with its RepoTags, kept as Docker shows them.
    let (_d2, other) = new_store();
    assert_eq!(import(&other, &fx.join("two-layer.docker.tar"), None).unwrap().name, "two-layer:latest");
    // Each format keeps its own blobs (for push), and prune keeps every one an image names.
    assert!(store.prune().unwrap().is_empty());
    let blobs = std::fs::read_dir(store.dir().join("blobs/sha256")).unwrap().count();
    store.remove("two:docker").unwrap();
    let fewer = std::fs::read_dir(store.dir().join("blobs/sha256")).unwrap().count();
    assert!(fewer < blobs, "removing an image removes the blobs only it had ({blobs} -> {fewer})");
}

#[test]
fn hostile_and_broken_images_fail_and_leave_nothing() {
    require_root!();
    let fx = fixtures!();
    let (_d, store) = new_store();
    import(&store, &fx.join("two-layer"), None).unwrap();
    let before = layer_dirs(&store);
    for bad in
        ["hostile-dotdot", "hostile-abs-symlink", "hostile-hardlink", "hostile-huge", "bad-digest", "bad-manifest"]
    {
        let err = import(&store, &fx.join(bad), Some("bad:1")).unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{bad}: {err}");
        assert_eq!(layer_dirs(&store), before, "{bad} left a layer");
        assert_eq!(std::fs::read_dir(store.dir().join("tmp")).unwrap().count(), 0, "{bad} left work files");
        assert!(store.record("bad:1").is_err(), "{bad} left a record");
    }
    for escaped in ["/tmp/escape.txt", "/tmp/pwned.txt", "/escape.txt"] {
        assert!(!Path::new(escaped).exists(), "{escaped} was written outside the store");
    }
    // Device nodes are skipped; the rest of the layer lands.
    let r = import(&store, &fx.join("hostile-device"), Some("dev:1")).unwrap();
    let layer = store.dir().join("layers/sha256").join(r.layers[0].trim_start_matches("sha256:"));
    assert!(layer.join("ok.txt").exists());
    let blocks = std::fs::read_dir(&layer).unwrap().flatten().filter(|e| {
        use std::os::unix::fs::FileTypeExt;
        e.file_type().unwrap().is_block_device()
    });
    assert_eq!(blocks.count(), 0);
    // Not an image at all.
    assert!(matches!(import(&store, Path::new("/etc"), None), Err(Error::Image { .. })));
    assert!(matches!(
        import(&store, Path::new("/no/such/file.tar"), None),
        Err(Error::Image { .. } | Error::Io { .. })
    ));
    assert!(matches!(import(&store, &fx.join("two-layer"), Some("Bad Name")), Err(Error::Config(_))));
}

#[test]
fn remove_and_prune_keep_shared_layers() {
    require_root!();
    let fx = fixtures!();
    let (_d, store) = new_store();
    import(&store, &fx.join("two-layer"), None).unwrap();
    import(&store, &fx.join("shared-base"), Some("shared:1")).unwrap();
    assert_eq!(layer_dirs(&store), 3);
    let removed = store.remove("shared:1").unwrap();
    assert_eq!(removed.len(), 1, "only its own top layer goes");
    assert_eq!(layer_dirs(&store), 2);
    assert!(store.image("two-layer").is_ok());
    assert!(store.prune().unwrap().is_empty());
    assert!(matches!(store.image("shared:1"), Err(Error::Image { .. })));
}

#[test]
fn concurrent_imports_do_not_corrupt_the_store() {
    require_root!();
    let fx = fixtures!();
    let (_d, store) = new_store();
    std::thread::scope(|s| {
        for i in 0..4 {
            let (store, fx) = (&store, &fx);
            s.spawn(move || import(store, &fx.join("two-layer.oci.tar"), Some(&format!("c:{i}"))).unwrap());
        }
    });
    assert_eq!(layer_dirs(&store), 2);
    assert_eq!(store.list().unwrap().len(), 4);
}

#[test]
fn a_real_python_image_runs_by_name() {
    require_root!();
    let fx = fixtures!();
    let archive = fx.join("debian-python.oci.tar");
    if !archive.exists() {
        common::skip(module_path!(), "debian-python.oci.tar is missing; run scripts/build-oci-fixtures.sh --python");
        return;
    }
    let (_d, store) = new_store();
    import(&store, &archive, Some("debian-python:12")).unwrap();
    let image = store.image("debian-python:12").unwrap();
    let out = Sandbox::builder(&image).stdin("6 7\n").run([
        "python3",
        "-c",
        "a, b = map(int, input().split()); print(a * b)",
    ]);
    let out = out.unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "42\n".into()), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn layers_in_use_survive_rm_and_prune() {
    require_root!();
    let fx = fixtures!();
    let (_d, store) = new_store();
    import(&store, &fx.join("two-layer"), Some("lease:1")).unwrap();
    let image = store.image("lease:1").unwrap();
    let b = Sandbox::builder(&image).entrypoint(Vec::<String>::new());
    // The record goes; the layers stay while an image holds them.
    store.remove("lease:1").unwrap();
    assert!(store.image("lease:1").is_err());
    assert_eq!(layer_dirs(&store), 2, "rm leaves the layers a caller still holds");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            let mut prunes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(store.prune().unwrap(), Vec::<String>::new(), "nothing in use is pruned");
                prunes += 1;
            }
            prunes
        });
        for i in 0..100 {
            let out = b.run(["/bin/ls", "/data"]).unwrap_or_else(|e| panic!("run {i}: {e}"));
            assert_eq!((out.status, stdout(&out)), (Status::Ok, "keep.txt\n".into()), "run {i}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(pruner.join().unwrap() > 0);
    });
    // A clone holds the layers as well as the original.
    let clone = image.clone();
    drop(image);
    assert!(store.prune().unwrap().is_empty());
    drop((b, clone));
    assert_eq!(store.prune().unwrap().len(), 2, "once no image holds them, prune takes them");
    assert_eq!(layer_dirs(&store), 0);
}

#[test]
fn a_layer_without_padding_or_end_blocks_imports_as_docker_takes_it() {
    require_root!();
    let fx = fixtures!();
    let (_d, store) = new_store();
    // umoci 0.4's `insert` layer: the stream stops right after the last file's data.
    import(&store, &fx.join("quirk-unterminated"), Some("quirk:1")).unwrap();
    let out = Sandbox::run(&store.image("quirk:1").unwrap(), Vec::<String>::new()).unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "c.txt\n".into()), "the opaque /olddir holds c.txt only");
    // A stream that stops inside a file's data is still refused.
    assert!(matches!(import(&store, &fx.join("hostile-huge"), Some("huge:1")), Err(Error::Image { .. })));
}
