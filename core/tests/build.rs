//! Images made the way `isolette build` makes them: a tree as an overlay leaves it
//! (files, a deletion, an opaque directory) written as a layer (`build::write_layer`),
//! committed on a base image in the store (`Store::commit`), and run in a sandbox; and
//! `Store::build`: Dockerfiles built step by step, each cache rule, reproducible digests,
//! stages, and the errors of bad recipes and failing steps.

mod common;

use std::path::PathBuf;

use common::{busybox, cli, require_root, stdout};
use isolette::build::{BuildEvent, BuildNetwork, BuildOptions, StepReport, write_layer};
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
    let stored = store.add_layer(&tar).unwrap();
    assert!(store.has_layer(&stored));
    let layer = NewLayer { layer: Some(stored), created_by: "RUN a step".into() };
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
    assert_eq!(store.add_layer(&tar).unwrap(), layer.layer.clone().unwrap(), "the same tar, the same layer");
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
    let layer = NewLayer { layer: Some(store.add_layer(&tar).unwrap()), created_by: "COPY only /".into() };
    let record = store.commit("scratch-built", None, &[layer], "1970-01-01T00:00:00Z", &|_| {}).unwrap();
    assert_eq!((record.name.as_str(), record.layers.len()), ("scratch-built:latest", 1));
    assert!(store.image("scratch-built").unwrap().layers()[0].join("only").is_file());

    // A broken tar: an error, no record, nothing left in the store's tmp.
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 3000]).unwrap();
    assert!(store.add_layer(&junk).is_err());
    let pruned =
        isolette::StoredLayer { diff_id: format!("sha256:{}", "0".repeat(64)), blob: "sha256:00".into(), size: 1 };
    let bad = NewLayer { layer: Some(pruned), created_by: "RUN junk".into() };
    assert!(store.commit("junk:1", None, &[bad], "1970-01-01T00:00:00Z", &|_| {}).is_err());
    assert!(store.record("junk:1").is_err());
    let left = std::fs::read_dir(store.dir().join("tmp")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "nothing half-made");
    // A missing base is an error naming it.
    let e = store.commit("x:1", Some("nope:1"), &[], "1970-01-01T00:00:00Z", &|_| {}).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

/// A store with the two-layer test image as `base` (busybox, user 1000, `sh -c` as its
/// entrypoint), or `None` (the test skips) when the fixtures are missing.
fn store_with_base() -> Option<(tempfile::TempDir, Store)> {
    let Some(fx) = fixtures() else {
        common::skip(module_path!(), "the OCI fixtures are missing; run scripts/build-oci-fixtures.sh");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    store.import(&fx.join("two-layer"), Some("base"), &mut |_| {}).unwrap();
    Some((dir, store))
}

/// A build context with `files` (path, content) and `Dockerfile`.
fn context(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    for (path, content) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
    }
    dir
}

/// Builds and returns the result and each step's report.
fn build(
    store: &Store,
    ctx: &std::path::Path,
    options: &BuildOptions,
) -> (isolette::Result<isolette::build::BuildResult>, Vec<StepReport>) {
    let mut steps = Vec::new();
    let result = store.build(ctx, options, &mut |e| {
        if let BuildEvent::Step(s) = e {
            steps.push(s.clone());
        }
    });
    (result, steps)
}

fn options(tags: &[&str]) -> BuildOptions {
    let mut o = BuildOptions::default();
    o.tags = tags.iter().map(|t| t.to_string()).collect();
    o.network = BuildNetwork::None;
    o
}

/// What each step at these lines said: `CACHED`, or why it ran.
fn said(steps: &[StepReport], lines: &[usize]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let s = steps.iter().find(|s| s.line == *l).unwrap_or_else(|| panic!("no step at line {l}: {steps:#?}"));
            if s.cached { "CACHED".to_string() } else { s.reason.clone().unwrap_or_else(|| "done".into()) }
        })
        .collect()
}

fn run_in(store: &Store, name: &str, script: &str) -> String {
    let image = store.image(name).unwrap();
    let out = Sandbox::builder(&image).entrypoint(Vec::<String>::new()).run(["/bin/sh", "-c", script]).unwrap();
    assert_eq!(out.status, Status::Ok, "{script}: {}", String::from_utf8_lossy(&out.stderr));
    stdout(&out)
}

fn set_mtime(path: &std::path::Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(nix::fcntl::AT_FDCWD, path, &t, &t, nix::sys::stat::UtimensatFlags::FollowSymlink)
        .unwrap();
}

const CACHE_RULES: &str = "\
FROM base
USER root
COPY app/ /app/
RUN cat /app/main.py > /copy
COPY --chmod=644 perm/ /perm/
LABEL v=1
ARG V=1
RUN echo $V > /v
ENV E=1
RUN echo $E > /e
";

/// Each cache rule of the build issue, one rebuild at a time: what keeps a step cached,
/// what makes it run, and the reason it gives.
#[test]
fn the_step_cache_keeps_and_misses_by_content_and_scope() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let ctx = context(CACHE_RULES, &[("app/main.py", "print(1)\n"), ("perm/f", "x\n")]);
    let main = ctx.path().join("app/main.py");
    let lines = [3, 4, 5, 8, 10];
    let again = |o: &BuildOptions| {
        let (r, steps) = build(&store, ctx.path(), o);
        r.unwrap_or_else(|e| panic!("{e}"));
        steps
    };
    let o = options(&["rules:1"]);
    assert_eq!(said(&again(&o), &lines), ["not in the cache"; 5]);
    assert_eq!(run_in(&store, "rules:1", "cat /copy /v /e"), "print(1)\n1\n1\n");
    assert_eq!(said(&again(&o), &lines), ["CACHED"; 5], "a rebuild is all cache hits");

    // `touch` keeps the cache: times are not content.
    set_mtime(&main, 1_000_000);
    assert_eq!(said(&again(&o), &lines), ["CACHED"; 5], "touch");

    // `chmod` misses, and says which file.
    std::fs::set_permissions(&main, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let steps = again(&o);
    assert_eq!(said(&steps, &lines[..2]), ["changed: app/main.py", "a step before it changed"], "chmod");
    std::fs::set_permissions(&main, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    assert_eq!(said(&again(&o), &lines), ["CACHED"; 5], "the old mode is the old entry");

    // Rewritten with the same size and the old mtime put back (`touch -r`): still a miss.
    let before = std::fs::metadata(&main).unwrap();
    std::fs::write(&main, "print(2)\n").unwrap();
    set_mtime(&main, std::os::unix::fs::MetadataExt::mtime(&before));
    assert_eq!(std::fs::metadata(&main).unwrap().len(), before.len());
    assert_eq!(said(&again(&o), &lines[..1]), ["changed: app/main.py"], "same size, same mtime, new content");
    assert_eq!(run_in(&store, "rules:1", "cat /copy"), "print(2)\n");

    // The same tree under another umask: with --chmod, a hit.
    std::fs::set_permissions(ctx.path().join("perm/f"), std::os::unix::fs::PermissionsExt::from_mode(0o664)).unwrap();
    assert_eq!(said(&again(&o), &lines[2..3]), ["CACHED"], "umask 0002 vs 0022 under --chmod=644");

    // A LABEL changes no key.
    std::fs::write(ctx.path().join("Dockerfile"), CACHE_RULES.replace("v=1", "v=2")).unwrap();
    assert_eq!(said(&again(&o), &lines), ["CACHED"; 5], "LABEL");

    // A build-arg misses from the first RUN that has it in scope, and says so.
    let mut with_arg = o.clone();
    with_arg.build_args = vec![("V".into(), "2".into())];
    let steps = again(&with_arg);
    assert_eq!(said(&steps, &lines), ["CACHED", "CACHED", "CACHED", "build-arg V", "build-arg V"]);

    assert_eq!(said(&again(&o), &lines), ["CACHED"; 5], "back to the default: the old entries");

    // ENV the same way.
    std::fs::write(ctx.path().join("Dockerfile"), CACHE_RULES.replace("E=1", "E=2")).unwrap();
    assert_eq!(said(&again(&o), &lines), ["CACHED", "CACHED", "CACHED", "CACHED", "env E"]);
    assert_eq!(run_in(&store, "rules:1", "cat /v /e"), "1\n2\n");

    // --no-cache runs everything, and says why.
    let mut none = o.clone();
    none.no_cache = true;
    assert_eq!(said(&again(&none), &lines), ["--no-cache"; 5]);
}

/// Two builds without the cache of the same context, with a source date epoch: the same
/// image, to the digest.
/// A build all from the cache makes the same image again (its `created` is its newest
/// step's), so a catalog of images `FROM` each other stays cached when it is built again.
#[test]
fn a_build_from_the_cache_is_the_same_image_and_its_children_stay_cached() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let parent = context("FROM base\nUSER root\nRUN echo 1 > /one\nENV A=1\n", &[]);
    let bare = context("FROM base\nENV B=2\n", &[]);
    let child = context("FROM parent\nRUN echo 2 > /two\n", &[]);
    let id = |ctx: &tempfile::TempDir, tag: &str| {
        let (r, steps) = build(&store, ctx.path(), &options(&[tag]));
        (r.unwrap_or_else(|e| panic!("{e}")).image.id, steps)
    };
    let (first, _) = id(&parent, "parent");
    let (bare_first, _) = id(&bare, "bare");
    id(&child, "child");
    // A second later, so that a new `created` would show.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (again, steps) = id(&parent, "parent");
    assert_eq!(said(&steps, &[3]), ["CACHED"]);
    assert_eq!(again, first, "a rebuild from the cache is the same image");
    assert_eq!(id(&bare, "bare").0, bare_first, "an image with no layer of its own is as new as its base");
    let (_, steps) = id(&child, "child");
    assert_eq!(said(&steps, &[2]), ["CACHED"], "a child of a rebuilt image stays cached");
}

#[test]
fn a_build_with_a_source_date_epoch_is_reproducible() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let ctx = context(
        "FROM base\nUSER root\nCOPY . /src/\nRUN mkdir -p /out && echo made > /out/f\nENV X=1\n",
        &[("a.txt", "a\n"), ("sub/b.txt", "b\n")],
    );
    let mut o = options(&["repro:1"]);
    o.no_cache = true;
    o.source_date_epoch = Some(1_700_000_000);
    let first = build(&store, ctx.path(), &o).0.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    o.tags = vec!["repro:2".into()];
    let second = build(&store, ctx.path(), &o).0.unwrap();
    assert_eq!(first.image.id, second.image.id, "the same config");
    assert_eq!(first.image.manifest, second.image.manifest, "the same manifest");
    assert_eq!(first.image.layers, second.image.layers);
    assert_eq!(first.image.created.as_deref(), Some("2023-11-14T22:13:20Z"));
}

/// Stages the target does not need never run; `--target`; `COPY --from`; a RUN that
/// changes nothing adds no layer; `ADD` of a tar; `--chown`; a deletion.
#[test]
fn stages_copies_and_layers() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o604);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1);
    header.set_cksum();
    tar.append_data(&mut header, "inner/file", &b"tar\n"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let dockerfile = "\
FROM base AS broken
RUN exit 3
FROM base AS builder
USER root
RUN mkdir /out && echo built > /out/artifact && rm /etc/top.txt && ln -s /out/artifact /out/link && ln -s /out /abs
RUN true
RUN <<EOF sh
echo \"from a here-document\" > /out/doc
EOF
FROM base AS final
COPY --from=builder /out/artifact /artifact
COPY --from=builder /abs/link /via-link
COPY --chown=1000:1001 own.txt /owned
ADD files.tar /unpacked/
WORKDIR /made/here
USER 1000:1001
WORKDIR /made/mine
USER root
ENV GREETING=built LANG=C.UTF-8
EXPOSE 8080 53/udp
LABEL org.example.team=judges
STOPSIGNAL SIGTERM
VOLUME /data
HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost:8080/ || exit 1
ENTRYPOINT [\"/bin/sh\", \"-c\"]
CMD [\"echo hi\"]
";
    let ctx = context(dockerfile, &[("own.txt", "mine\n")]);
    std::fs::write(ctx.path().join("files.tar"), tar).unwrap();
    // A name that is not UTF-8 goes into the image as it is.
    let odd = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"odd-\xff");
    std::fs::create_dir(ctx.path().join("dir")).unwrap();
    std::fs::write(ctx.path().join("dir").join(odd), "odd\n").unwrap();
    let dockerfile = format!("{dockerfile}COPY dir/ /dir/\n");
    std::fs::write(ctx.path().join("Dockerfile"), &dockerfile).unwrap();
    let (result, steps) = build(&store, ctx.path(), &options(&["stages:1"]));
    let result = result.unwrap_or_else(|e| panic!("{e}"));
    assert!(steps.iter().all(|s| s.stage != "broken"), "the unused stage never ran: {steps:#?}");
    let noop = steps.iter().find(|s| s.line == 6).unwrap();
    assert_eq!(noop.layer, None, "a RUN that changes nothing adds no layer");
    assert_eq!(result.image.layers.len(), 2 + 7, "the base's two, then COPY, COPY, COPY, ADD, WORKDIR, WORKDIR, COPY");
    assert_eq!(run_in(&store, "stages:1", "cat /via-link"), "built\n", "absolute symlinks resolve inside the stage");
    // What the config steps recorded, in the image's OCI config.
    let blob = store.dir().join("blobs/sha256").join(result.image.id.strip_prefix("sha256:").unwrap());
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    let c = &config["config"];
    assert_eq!(c["WorkingDir"], "/made/mine");
    assert!(c["Env"].as_array().unwrap().iter().any(|e| e == "GREETING=built"), "{c}");
    assert_eq!(c["ExposedPorts"], serde_json::json!({ "8080/tcp": {}, "53/udp": {} }));
    assert_eq!(c["Labels"]["org.example.team"], "judges");
    assert_eq!((c["StopSignal"].as_str(), c["Volumes"]["/data"].is_object()), (Some("SIGTERM"), true));
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "curl -f http://localhost:8080/ || exit 1"]));
    assert_eq!(
        (c["Healthcheck"]["Interval"].as_u64(), c["Healthcheck"]["Retries"].as_u64()),
        (Some(5_000_000_000), Some(3))
    );
    assert_eq!((c["Entrypoint"][0].as_str(), c["Cmd"][0].as_str()), (Some("/bin/sh"), Some("echo hi")));
    let history = config["history"].as_array().unwrap();
    assert!(history.iter().any(|h| h["empty_layer"] == true), "config steps are empty layers in the history");
    let image = store.image("stages:1").unwrap();
    let out = Sandbox::builder(&image)
        .entrypoint(Vec::<String>::new())
        .run(["/bin/sh", "-c", "for f in /dir/*; do printf '%s\\n' \"$f\"; done"])
        .unwrap();
    assert_eq!(out.stdout, b"/dir/odd-\xff\n");
    let got = run_in(
        &store,
        "stages:1",
        "cat /artifact /unpacked/inner/file; stat -c '%u:%g %a' /owned /unpacked/inner/file; cd /made/here && pwd; stat -c '%u:%g' /made/here /made/mine; cat /etc/top.txt",
    );
    assert_eq!(
        got, "built\ntar\n1000:1001 644\n0:0 604\n/made/here\n1000:1000\n1000:1001\ntop\n",
        "WORKDIR makes its directories the stage USER's (the base image's 1000:1000, then 1000:1001)"
    );
    // --target builds the stage named, with its deletion.
    let mut o = options(&["stages:builder"]);
    o.target = Some("builder".into());
    build(&store, ctx.path(), &o).0.unwrap();
    assert_eq!(
        run_in(&store, "stages:builder", "cat /out/artifact /out/doc; ls /etc"),
        "built\nfrom a here-document\nbase.txt\n"
    );
}

/// Bad input and failing steps: errors that name the line, nothing stored.
#[test]
fn bad_recipes_and_failing_steps() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let cases: &[(&str, &str)] = &[
        ("FROM base\nFOO bar\n", "line 2"),
        ("FROM base\nRUN [\"unterminated\n", "line 2"),
        ("FROM localhost:1/nope:1\n", "line 1"),
        ("FROM base\nCOPY ../x /x\n", "outside the build context"),
        ("FROM base\nCOPY link /x\n", "outside the build context"),
        ("FROM base\nCOPY missing /x\n", "no such file"),
        ("FROM scratch\nRUN true\n", "line 2"),
        ("FROM base\nCOPY --chmod=rwx a /a\n", "line 2: COPY a /a: --chmod=rwx: give octal bits"),
        ("FROM base\nUSER nobody-here\nRUN true\n", "line 3"),
    ];
    for (dockerfile, want) in cases {
        let ctx = context(dockerfile, &[]);
        let _ = std::os::unix::fs::symlink("/etc", ctx.path().join("link"));
        let e = build(&store, ctx.path(), &options(&["bad:1"])).0.unwrap_err();
        assert!(e.to_string().contains(want), "{dockerfile:?}: {e}");
        assert!(store.record("bad:1").is_err(), "{dockerfile:?}: nothing stored");
    }
    let ctx = context("FROM base\nUSER root\nRUN echo partial > /p\nRUN echo to stderr >&2; exit 7\n", &[]);
    let e = build(&store, ctx.path(), &options(&["bad:1"])).0.unwrap_err();
    match &e {
        isolette::Error::Build { line, exit_code, reason, .. } => {
            assert_eq!((*line, *exit_code), (4, Some(7)), "{e}");
            assert!(reason.contains("to stderr"), "the step's last output: {reason}");
        }
        other => panic!("not a build error: {other}"),
    }
    assert_eq!(e.to_json()["line"], 4);
    assert!(store.record("bad:1").is_err());
    let left: Vec<_> = std::fs::read_dir(store.dir().join("builds")).unwrap().collect();
    assert!(left.is_empty(), "the build's work is gone: {left:?}");
}

/// `isolette build` killed in the middle of a `RUN` (SIGKILL) or stopped by Ctrl-C
/// (SIGINT): the step's processes end with it, nothing stays mounted, Ctrl-C's build
/// removes its work itself and `isolette gc` a killed one's; the image was never stored.
/// Then the CLI's JSON: one object per step, and a failing step's line and exit code with
/// exit 125.
#[test]
fn a_killed_build_leaves_nothing_and_the_cli_reports_steps() {
    require_root!();
    let cli = cli!();
    let Some((dir, store)) = store_with_base() else { return };
    let store_dir = store.dir().to_path_buf();
    let ctx = context("FROM base\nUSER root\nARG ISOLETTE_TEST_MARK\nRUN echo begun > /begun; sleep 60\n", &[]);
    for signal in [nix::sys::signal::Signal::SIGKILL, nix::sys::signal::Signal::SIGINT] {
        let marker = common::marker();
        let mut child = std::process::Command::new(cli)
            .arg("--store")
            .arg(&store_dir)
            .args(["build", "--network", "none", "-t", "killed:1", "--build-arg"])
            .arg(format!("{}={}", marker.0, marker.1))
            .arg(ctx.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while common::marked_processes(&marker).is_empty() {
            assert!(std::time::Instant::now() < deadline, "the RUN never started");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let status = child.wait().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !common::marked_processes(&marker).is_empty() {
            assert!(std::time::Instant::now() < deadline, "{signal}: the step outlived the build");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let work: Vec<_> = std::fs::read_dir(store_dir.join("builds")).unwrap().flatten().collect();
        if signal == nix::sys::signal::Signal::SIGKILL {
            assert_eq!(work.len(), 1, "the killed build's work is there until gc");
        } else {
            assert_eq!(status.code(), Some(125), "Ctrl-C stops the build as a failure");
            assert!(work.is_empty(), "Ctrl-C: the build removed its work itself: {work:?}");
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*dir.path().to_string_lossy()), "{signal}: a mount of the build is left");
        // The kernel lets a cgroup go some time after its last process has gone (under load,
        // more than gc's own half second): wait for the step's cgroups to hold no process.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let holds = |dir: &std::path::PathBuf| {
            ["cgroup.procs", "tasks"]
                .iter()
                .any(|f| std::fs::read_to_string(dir.join(f)).is_ok_and(|t| !t.trim().is_empty()))
        };
        while common::cgroups_of(child.id()).iter().any(holds) {
            assert!(std::time::Instant::now() < deadline, "{signal}: the step's cgroups keep a process");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let gc = std::process::Command::new(cli).arg("--store").arg(&store_dir).arg("gc").output().unwrap();
        let said = String::from_utf8_lossy(&gc.stdout);
        assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
        assert!(common::cgroups_of(child.id()).is_empty(), "{signal}: cgroups left after gc, which said:\n{said}");
        let left: Vec<_> = std::fs::read_dir(store_dir.join("builds")).unwrap().flatten().collect();
        assert!(left.is_empty(), "{signal}: gc removes the build's work: {left:?}");
        let partial = std::fs::read_dir(store_dir.join("build-cache/steps"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(partial, 0, "{signal}: no half-written cache entry");
        assert!(store.record("killed:1").is_err());
    }

    let ctx = context("FROM base\nUSER root\nRUN echo ok > /ok\nLABEL a=b\nRUN exit 9\n", &[]);
    let out = std::process::Command::new(cli)
        .arg("--store")
        .arg(&store_dir)
        .args(["build", "--json", "--network", "none", "-t", "json:1"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5, "FROM, USER, RUN, LABEL, and the error: {lines:#?}");
    assert_eq!(lines[2]["line"], 3);
    assert_eq!(lines[2]["reason"], "not in the cache");
    let error = &lines[4]["error"];
    assert_eq!(
        (error["kind"].as_str(), error["line"].as_u64(), error["exit_code"].as_i64()),
        (Some("build"), Some(5), Some(9))
    );
    // A caller that is not root is told so, and nothing is made.
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(cli)
        .arg("--store")
        .arg(open.path().join("store"))
        .args(["build", "--json"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.code() == Some(125) && said.contains("needs root"), "{said}");
}

/// A `RUN` with the build's outbound network gets `/etc/hosts` and `/etc/resolv.conf`,
/// and a devpts of its own (apt writes its log through a pseudo-terminal), and its layer
/// holds only what the command made (no connection is made).
#[test]
fn a_step_with_a_network_keeps_the_sandbox_files_out_of_its_layer() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let ctx = context(
        "FROM base\nUSER root\nRUN test -s /etc/resolv.conf && test -s /etc/hosts && test -c /dev/pts/ptmx && touch /marker\n",
        &[],
    );
    let mut o = options(&["net:1"]);
    o.network = BuildNetwork::Outbound;
    let (result, steps) = build(&store, ctx.path(), &o);
    result.unwrap_or_else(|e| panic!("{e}"));
    let layer = steps.iter().find(|s| s.line == 3).and_then(|s| s.layer.clone()).expect("the RUN made a layer");
    let names: Vec<String> = std::fs::read_dir(store.layer_path(&layer))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["marker"]);
}

/// A step's setuid file and file capability stay in its layer's tar (an export or a push
/// has them), but not in the store's unpacked layer, where any host user could run them;
/// inside a sandbox they would mean nothing (`no_new_privs`). The builds' work is the
/// owner's only.
#[test]
fn a_steps_setuid_files_are_not_runnable_from_the_store() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let ctx = context("FROM base\nUSER root\nRUN cp /bin/busybox /suid && chmod 4755 /suid\n", &[]);
    let (result, steps) = build(&store, ctx.path(), &options(&["suid:1"]));
    result.unwrap_or_else(|e| panic!("{e}"));
    let layer = steps.iter().find(|s| s.line == 3).and_then(|s| s.layer.clone()).unwrap();
    let mode =
        |p: &std::path::Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions());
    assert_eq!(mode(&store.layer_path(&layer).join("suid")) & 0o7777, 0o755);
    let blob = store.dir().join("blobs/sha256").join(layer.strip_prefix("sha256:").unwrap());
    let mut tar = tar::Archive::new(std::fs::File::open(blob).unwrap());
    let kept = tar.entries().unwrap().map(|e| e.unwrap()).find(|e| e.path().unwrap().ends_with("suid")).unwrap();
    assert_eq!(kept.header().mode().unwrap() & 0o7777, 0o4755, "the tar keeps the image's mode");
    assert_eq!(mode(&store.dir().join("builds")) & 0o777, 0o700);
}

/// A stage from scratch: files only, owners by number or `root` (there is no /etc/passwd;
/// a name is a clear error naming its line).
#[test]
fn a_stage_from_scratch() {
    require_root!();
    let Some((_dir, store)) = store_with_base() else { return };
    let ctx = context("FROM scratch\nCOPY --chown=root:root a /a\nCOPY --chown=5:6 a /b\n", &[("a", "a\n")]);
    let (result, steps) = build(&store, ctx.path(), &options(&["scratch:1"]));
    let result = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(result.image.layers.len(), 2);
    let owner = |line: usize, name: &str| {
        let layer = steps.iter().find(|s| s.line == line).and_then(|s| s.layer.clone()).unwrap();
        let meta = std::fs::metadata(store.layer_path(&layer).join(name)).unwrap();
        (std::os::unix::fs::MetadataExt::uid(&meta), std::os::unix::fs::MetadataExt::gid(&meta))
    };
    assert_eq!((owner(2, "a"), owner(3, "b")), ((0, 0), (5, 6)));
    let ctx = context("FROM scratch\nCOPY --chown=nobody a /a\n", &[("a", "a\n")]);
    let e = build(&store, ctx.path(), &options(&["scratch:2"])).0.unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("no /etc/passwd"), "{e}");
}
