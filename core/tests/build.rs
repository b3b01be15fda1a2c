//! Images made the way `isolette build` makes them: a tree as an overlay leaves it
//! (files, a deletion, an opaque directory) written as a layer (`build::write_layer`),
//! committed on a base image in the store (`Store::commit`), and run in a sandbox.

mod common;

use std::path::PathBuf;

use common::{busybox, require_root, stdout};
use isolette::build::write_layer;
use isolette::{NewLayer, Sandbox, Status, Store};

fn fixtures() -> Option<PathBuf> {
    let dir = match std::env::var_os("ISOLETTE_OCI_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/oci-fixtures"),
    };
    dir.join("two-layer/index.json").exists().then_some(dir)
}

/// The upper directory of a step that deleted `/data/keep.txt`, replaced `/olddir` with
/// an empty one, and added `/added` and `/etc/top.txt`.
fn step_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("data")).unwrap();
    nix::sys::stat::mknod(&p.join("data/keep.txt"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
        .unwrap();
    std::fs::create_dir(p.join("olddir")).unwrap();
    xattr::set(p.join("olddir"), "trusted.overlay.opaque", b"y").unwrap();
    std::fs::write(p.join("added"), "made by a step\n").unwrap();
    std::fs::create_dir(p.join("etc")).unwrap();
    std::fs::write(p.join("etc/top.txt"), "replaced\n").unwrap();
    dir
}

#[test]
fn a_committed_layer_applies_on_its_base_and_the_same_tree_is_the_same_image() {
    require_root!();
    let _ = busybox!();
    let Some(fx) = fixtures() else {
        common::skip(module_path!(), "the OCI fixtures are missing; run scripts/build-oci-fixtures.sh");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    store.import(&fx.join("two-layer"), None, &mut |_| {}).unwrap();
    let tree = step_tree();
    let tar = dir.path().join("step.tar");
    let summary = write_layer(tree.path(), std::fs::File::create(&tar).unwrap(), Some(0)).unwrap();
    assert_eq!(summary.whiteouts, 2);
    let layer = NewLayer { tar: tar.clone(), created_by: "RUN a step".into() };
    let edit = |config: &mut serde_json::Map<String, serde_json::Value>| {
        config.insert("Env".into(), serde_json::json!(["PATH=/bin", "GREETING=built"]));
        config.insert("Labels".into(), serde_json::json!({ "made": "by a test" }));
    };
    let created = "1970-01-01T00:00:00Z";
    let record = store.commit("built:1", Some("two-layer"), std::slice::from_ref(&layer), created, &edit).unwrap();
    assert_eq!(record.layers.len(), 3);
    assert_eq!(record.layers[2], summary.diff_id, "the layer is named by its tar's digest");
    assert!(record.config.env.contains(&"GREETING=built".to_string()));

    let image = store.image("built:1").unwrap();
    let b = Sandbox::builder(&image).entrypoint(Vec::<String>::new());
    let run = |argv: &[&str]| {
        let out = b.run(argv).unwrap();
        assert_eq!(out.status, Status::Ok, "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    };
    assert_eq!(run(&["/bin/ls", "-A", "/data"]), "", "the deletion hides keep.txt");
    assert_eq!(run(&["/bin/ls", "-A", "/olddir"]), "", "the opaque directory hides the base's files");
    assert_eq!(run(&["/bin/cat", "/added", "/etc/top.txt", "/etc/base.txt"]).lines().count(), 3);
    assert!(run(&["/bin/cat", "/etc/top.txt"]).starts_with("replaced"));
    // The base's entrypoint and cmd still apply, with the new environment.
    let out = Sandbox::builder(&image).run(["/bin/hello"]).unwrap();
    assert_eq!(stdout(&out), "built from two-layer\n", "{}", String::from_utf8_lossy(&out.stderr));

    // The same tree, committed again under another name: the same image, one more record,
    // no new layer directory.
    let layer_dirs = || {
        std::fs::read_dir(store.dir().join("layers/sha256")).unwrap().flatten().filter(|e| e.path().is_dir()).count()
    };
    let before = layer_dirs();
    let again = store.commit("built:2", Some("two-layer"), &[layer], created, &edit).unwrap();
    assert_eq!((again.id.as_str(), again.manifest.as_deref()), (record.id.as_str(), record.manifest.as_deref()));
    assert_eq!(layer_dirs(), before);
    // Pruning keeps what the records use.
    store.prune().unwrap();
    assert!(store.image("built:2").is_ok());
}

/// A step run in a sandbox whose writable layer is kept on the host, written as a layer:
/// what the program made and deleted, and nothing of the sandbox's own.
#[test]
fn a_runs_writable_layer_becomes_its_layer() {
    require_root!();
    let busybox = busybox!();
    let dir = tempfile::tempdir().unwrap();
    // A layer over busybox with a directory the sandbox user may write in, and a file in it.
    let extra = dir.path().join("extra");
    std::fs::create_dir_all(extra.join("w")).unwrap();
    std::fs::write(extra.join("w/old"), "old\n").unwrap();
    std::fs::set_permissions(extra.join("w"), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let image = isolette::Image::from_layers(&[busybox.layers()[0].clone(), extra]).unwrap();
    let step = dir.path().join("step");
    std::fs::create_dir(&step).unwrap();
    let out = Sandbox::builder(&image)
        .writable_layer(&step)
        .run(["/bin/sh", "-c", "echo made > /w/new && rm /w/old && echo ok"])
        .unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "ok\n".into()), "{}", String::from_utf8_lossy(&out.stderr));
    let mut tar = Vec::new();
    let summary = write_layer(&step.join("upper"), &mut tar, Some(0)).unwrap();
    let mut names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["w/", "w/.wh.old", "w/new"], "the program's changes, and only those");
    assert_eq!(summary.whiteouts, 1);
    // Bad directories are config errors, before anything runs.
    for bad in [PathBuf::from("relative"), dir.path().join("missing")] {
        let e = Sandbox::builder(&image).writable_layer(&bad).check(["/bin/true"]).unwrap_err();
        assert!(matches!(e, isolette::Error::Config(_)), "{bad:?}: {e}");
    }
}

#[test]
fn an_image_from_scratch_and_bad_layers() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("only"), "x").unwrap();
    let tar = dir.path().join("only.tar");
    write_layer(tree.path(), std::fs::File::create(&tar).unwrap(), Some(0)).unwrap();
    let layer = NewLayer { tar, created_by: "COPY only /".into() };
    let record = store.commit("scratch-built", None, &[layer], "1970-01-01T00:00:00Z", &|_| {}).unwrap();
    assert_eq!((record.name.as_str(), record.layers.len()), ("scratch-built:latest", 1));
    assert!(store.image("scratch-built").unwrap().layers()[0].join("only").is_file());

    // A broken tar: an error, no record, nothing left in the store's tmp.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 3000]).unwrap();
    let bad = NewLayer { tar: junk, created_by: "RUN junk".into() };
    assert!(store.commit("junk:1", None, &[bad], "1970-01-01T00:00:00Z", &|_| {}).is_err());
    assert!(store.record("junk:1").is_err());
    let left = std::fs::read_dir(store.dir().join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "nothing half-made");
    // A missing base is an error naming it.
    let e = store.commit("x:1", Some("nope:1"), &[], "1970-01-01T00:00:00Z", &|_| {}).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}
