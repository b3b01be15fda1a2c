//! Pulls and pushes against real registries on loopback: Debian's `docker-registry` (the
//! reference distribution registry) over plain HTTP, over HTTPS with a certificate made
//! for the test, with htpasswd basic auth, and with bearer tokens from a token server of
//! the test's own (`token_server.py`); fixtures go in with `skopeo copy`, pushed images are
//! read back with `skopeo inspect`. A fault-injecting server of the test's own covers 429s,
//! dropped connections, bad digests and broken manifests.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cli;
use isolette::{Credentials, Error, RegistryOptions, Sandbox, Status, Store, Transfer, TransferState};
use sha2::{Digest as _, Sha256};

fn fixtures() -> PathBuf {
    match std::env::var_os("ISOLETTE_OCI_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/oci-fixtures"),
    }
}

/// Returns from the test unless the registry tools and the fixtures are here.
macro_rules! require_tools {
    () => {
        for tool in ["docker-registry", "skopeo", "openssl", "htpasswd"] {
            if !on_path(tool) {
                common::skip(module_path!(), &format!("`{tool}` is missing (scripts/setup.sh installs it)"));
                return;
            }
        }
        if !fixtures().join("two-layer.oci.tar").exists() {
            common::skip(module_path!(), "the OCI fixtures are missing; run scripts/build-oci-fixtures.sh");
            return;
        }
    };
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How a test registry checks its callers.
enum Auth {
    None,
    Htpasswd,
    Token,
}

const USER: &str = "judge";
const PASSWORD: &str = "s3cret-Pa55";

/// A `docker-registry` on a free loopback port, with its files in a temp dir.
struct Registry {
    dir: tempfile::TempDir,
    port: u16,
    _procs: Vec<Killed>,
}

impl Registry {
    fn start(tls: bool, auth: Auth) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        let mut procs = Vec::new();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            d.join("data").display()
        );
        if tls {
            make_tls(d);
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                d.join("server.pem").display(),
                d.join("server.key").display()
            );
        }
        match auth {
            Auth::None => {}
            Auth::Htpasswd => {
                let line = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
                std::fs::write(d.join("htpasswd"), line).unwrap();
                config += &format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", d.join("htpasswd").display());
            }
            Auth::Token => {
                run(Command::new("openssl")
                    .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=token"])
                    .arg("-keyout")
                    .arg(d.join("token.key"))
                    .arg("-out")
                    .arg(d.join("token.pem"))
                    .stderr(Stdio::null()));
                let token_port = free_port();
                let server = Command::new("python3")
                    .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/token_server.py"))
                    .arg(token_port.to_string())
                    .args([d.join("token.key"), d.join("token.pem")])
                    .args([USER, PASSWORD])
                    .arg(d.join("token.log"))
                    .spawn()
                    .unwrap();
                procs.push(Killed(server));
                wait_for_port(token_port);
                config += &format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{token_port}/token\n    service: isolette-test\n    issuer: isolette-test-issuer\n    rootcertbundle: {}\n",
                    d.join("token.pem").display()
                );
            }
        }
        std::fs::write(d.join("config.yml"), config).unwrap();
        let registry = Command::new("docker-registry")
            .arg("serve")
            .arg(d.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("registry.log")).unwrap())
            .spawn()
            .unwrap();
        procs.push(Killed(registry));
        wait_for_port(port);
        Registry { dir, port, _procs: procs }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Copies fixture `archive` in as `name` (`two:1`), as `skopeo copy` does it.
    fn put(&self, archive: &str, name: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--dest-tls-verify=false"]);
        if Path::new(&self.dir.path().join("htpasswd")).exists() {
            cmd.arg(format!("--dest-creds={USER}:{PASSWORD}"));
        }
        cmd.arg(format!("oci-archive:{}", fixtures().join(archive).display()));
        cmd.arg(format!("docker://{}/{name}", self.host()));
        run(&mut cmd);
    }

    /// `skopeo inspect` of `name` (raw manifest digest and the config's diff ids).
    fn inspect(&self, name: &str) -> (String, Vec<String>) {
        let base = || {
            let mut c = Command::new("skopeo");
            c.args(["inspect", "--tls-verify=false"]);
            if Path::new(&self.dir.path().join("htpasswd")).exists() {
                c.arg(format!("--creds={USER}:{PASSWORD}"));
            }
            c
        };
        let url = format!("docker://{}/{name}", self.host());
        let info: serde_json::Value = serde_json::from_str(&run(base().arg(&url))).unwrap();
        let config: serde_json::Value = serde_json::from_str(&run(base().arg("--config").arg(&url))).unwrap();
        let diff_ids =
            config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
        (info["Digest"].as_str().unwrap().to_string(), diff_ids)
    }
}

/// A CA, and a certificate for 127.0.0.1 and localhost signed by it.
fn make_tls(d: &Path) {
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d).stderr(Stdio::null()));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=isolette test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(d.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
}

/// `skopeo copy` of `target` out of the registry, which checks every blob's digest.
fn copy_out(target: &str) {
    let out = tempfile::tempdir().unwrap();
    run(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false", &format!("docker://{target}")])
        .arg(format!("oci:{}", out.path().join("o").display())));
}

fn new_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("store")).unwrap();
    (dir, store)
}

/// Nothing in the store: no record, layer, blob or work file.
fn assert_empty(store: &Store, context: &str) {
    for sub in ["images", "layers/sha256", "blobs/sha256", "tmp"] {
        let n = std::fs::read_dir(store.dir().join(sub)).unwrap().count();
        assert_eq!(n, 0, "{context}: {sub} has {n} entries");
    }
}

fn quiet() -> impl Fn(&Transfer) + Sync {
    |_: &Transfer| {}
}

#[test]
fn pull_over_http_runs_by_name_and_a_second_pull_downloads_nothing() {
    require_tools!();
    let reg = Registry::start(false, Auth::None);
    reg.put("two-layer.oci.tar", "two:1");
    let (_d, store) = new_store();
    let events = Mutex::new(Vec::new());
    let record = store
        .pull(&format!("{}/two:1", reg.host()), &RegistryOptions::new(), &|t: &Transfer| {
            events.lock().unwrap().push(t.clone())
        })
        .unwrap();
    assert_eq!(record.name, format!("{}/two:1", reg.host()));
    assert_eq!(record.layers.len(), 2);
    let events = events.into_inner().unwrap();
    let done: Vec<_> = events.iter().filter(|e| e.state == TransferState::Done).collect();
    assert_eq!(done.len(), 2, "{events:?}");
    assert!(done.iter().all(|e| e.bytes == e.total && e.count == 2));
    // Stored by digest too, and runnable by either name.
    let (digest, diff_ids) = reg.inspect("two:1");
    assert_eq!(record.manifest.as_deref(), Some(digest.as_str()));
    assert_eq!(record.layers, diff_ids);
    for name in [record.name.clone(), format!("{}/two@{digest}", reg.host())] {
        let image = store.image(&name).unwrap();
        let out = Sandbox::builder(&image).run(["cat /etc/top.txt /data/keep.txt"]).unwrap(); // entrypoint sh -c
        assert_eq!((out.status, out.stdout.as_slice()), (Status::Ok, &b"top\nkeep\n"[..]), "{name}");
    }
    // Again: every layer is there already.
    let again = Mutex::new(Vec::new());
    store
        .pull(&format!("{}/two:1", reg.host()), &RegistryOptions::new(), &|t: &Transfer| {
            again.lock().unwrap().push(t.state)
        })
        .unwrap();
    assert_eq!(again.into_inner().unwrap(), [TransferState::Exists, TransferState::Exists]);
    assert_eq!(std::fs::read_dir(store.dir().join("tmp")).unwrap().count(), 0);
}

#[test]
fn cli_pulls_a_python_image_and_runs_it() {
    require_tools!();
    let cli = cli!();
    if !fixtures().join("debian-python.oci.tar").exists() {
        common::skip(module_path!(), "debian-python.oci.tar is missing; run scripts/build-oci-fixtures.sh --python");
        return;
    }
    let reg = Registry::start(false, Auth::None);
    reg.put("debian-python.oci.tar", "python:3.11");
    let store = tempfile::tempdir().unwrap();
    let name = format!("localhost:{}/python:3.11", reg.port);
    let pulled = run(Command::new(cli).args(["image", "pull", "-q", &name]).env("ISOLETTE_STORE", store.path()));
    assert_eq!(pulled, format!("{name}\n"));
    let out = run(Command::new(cli)
        .args(["run", "--image", &name, "--", "python3", "-c", "print(1)"])
        .env("ISOLETTE_STORE", store.path()));
    assert_eq!(out, "1\n");
    let listed = run(Command::new(cli).args(["image", "ls"]).env("ISOLETTE_STORE", store.path()));
    assert!(listed.contains(&name) && listed.contains(&format!("localhost:{}/python@sha256:", reg.port)), "{listed}");
}

#[test]
fn push_gives_back_the_same_image() {
    require_tools!();
    let reg = Registry::start(false, Auth::None);
    let (_d, store) = new_store();
    // An OCI archive keeps its manifest; a `docker save` archive gets one made for it.
    for (archive, name) in [("two-layer.oci.tar", "two-oci:1"), ("two-layer.docker.tar", "two-docker:1")] {
        let imported = store.import(&fixtures().join(archive), Some(name), &mut |_| {}).unwrap();
        let target = format!("{}/pushed/{name}", reg.host());
        let events = Mutex::new(Vec::new());
        let digest = store
            .push(name, Some(&target), &RegistryOptions::new(), &|t: &Transfer| events.lock().unwrap().push(t.state))
            .unwrap();
        let (inspected, diff_ids) = reg.inspect(&format!("pushed/{name}"));
        assert_eq!((inspected.as_str(), &diff_ids), (digest.as_str(), &imported.layers), "{archive}");
        assert_eq!(imported.manifest.as_deref(), Some(digest.as_str()));
        assert!(events.into_inner().unwrap().contains(&TransferState::Done));
        // skopeo copies it out whole (every blob checked), and a pull gives the same image.
        copy_out(&target);
        let (_d2, fresh) = new_store();
        let pulled = fresh.pull(&target, &RegistryOptions::new(), &quiet()).unwrap();
        assert_eq!(
            (pulled.id, pulled.layers, pulled.manifest),
            (imported.id.clone(), imported.layers.clone(), Some(digest))
        );
    }
    // The registry keeps blobs per repository: a second push to the same one moves nothing.
    let target = format!("{}/again:1", reg.host());
    store.push("two-oci:1", Some(&target), &RegistryOptions::new(), &quiet()).unwrap();
    let again = Mutex::new(Vec::new());
    let retag = format!("{}/again:2", reg.host());
    store
        .push("two-oci:1", Some(&retag), &RegistryOptions::new(), &|t: &Transfer| again.lock().unwrap().push(t.state))
        .unwrap();
    assert_eq!(again.into_inner().unwrap(), [TransferState::Exists; 3]);
}

/// A built image (its layers kept uncompressed, as a build makes them) goes to a registry
/// gzip-compressed, skopeo reads it whole, and a pull gives the same image (the same id and
/// diff ids); a second push of it compresses nothing again.
#[test]
fn a_built_image_is_pushed_compressed_and_pulled_back_the_same() {
    require_tools!();
    let reg = Registry::start(false, Auth::None);
    let (dir, store) = new_store();
    store.import(&fixtures().join("two-layer.oci.tar"), Some("base"), &mut |_| {}).unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM base\nUSER root\nCOPY note /note\nRUN echo built > /built\n").unwrap();
    std::fs::write(ctx.join("note"), "a note\n").unwrap();
    let mut options = isolette::build::BuildOptions::default();
    options.tags = vec!["built:1".into()];
    options.network = isolette::build::BuildNetwork::None;
    let built = store.build(&ctx, &options, &mut |_| {}).unwrap().image;
    let target = format!("{}/built:1", reg.host());
    let digest = store.push("built:1", Some(&target), &RegistryOptions::new(), &quiet()).unwrap();
    assert_ne!(Some(&digest), built.manifest.as_ref(), "the registry's manifest names gzip blobs");
    let (inspected, diff_ids) = reg.inspect("built:1");
    assert_eq!((inspected, diff_ids), (digest.clone(), built.layers.clone()));
    copy_out(&target);
    let (_d2, fresh) = new_store();
    let pulled = fresh.pull(&target, &RegistryOptions::new(), &quiet()).unwrap();
    assert_eq!((pulled.id, pulled.layers), (built.id, built.layers));
    let image = fresh.image(&target).unwrap();
    let out = Sandbox::builder(&image).entrypoint(Vec::<String>::new()).run(["/bin/cat", "/note", "/built"]).unwrap();
    assert_eq!((out.status, out.stdout), (Status::Ok, b"a note\nbuilt\n".to_vec()));
    let again = store.push("built:1", Some(&target), &RegistryOptions::new(), &quiet()).unwrap();
    assert_eq!(again, digest, "the same gzip blobs, the same manifest");
}

#[test]
fn https_with_the_callers_ca_and_a_clear_error_without_it() {
    require_tools!();
    let cli = cli!();
    let reg = Registry::start(true, Auth::None);
    // skopeo trusts nothing here either: give it the CA through a certs dir.
    let certs = reg.dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(reg.dir.path().join("ca.pem"), certs.join("ca.crt")).unwrap();
    run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("--dest-cert-dir={}", certs.display()))
        .arg(format!("oci-archive:{}", fixtures().join("two-layer.oci.tar").display()))
        .arg(format!("docker://localhost:{}/two:1", reg.port)));
    let store = tempfile::tempdir().unwrap();
    let name = format!("localhost:{}/two:1", reg.port);
    let pull = |ca: Option<&Path>| {
        let mut c = Command::new(cli);
        c.args(["image", "pull", "-q", &name]).env("ISOLETTE_STORE", store.path());
        if let Some(ca) = ca {
            c.env("SSL_CERT_FILE", ca);
        }
        c.output().unwrap()
    };
    let refused = pull(None);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("registry localhost:") && err.to_lowercase().contains("certificate"),
        "{err}"
    );
    let ok = pull(Some(&reg.dir.path().join("ca.pem")));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}

#[test]
fn basic_auth_login_stores_credentials_and_never_prints_them() {
    require_tools!();
    let cli = cli!();
    let reg = Registry::start(false, Auth::Htpasswd);
    reg.put("two-layer.oci.tar", "two:1");
    let home = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let isolette = |args: &[&str], stdin: &str| {
        let mut child = Command::new(cli)
            .args(args)
            .env("DOCKER_CONFIG", home.path())
            .env("ISOLETTE_STORE", store.path())
            .env_remove("ISOLETTE_REGISTRY_USER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let name = format!("{}/two:1", reg.host());
    let (ok, text) = isolette(&["image", "pull", "-q", &name], "");
    assert!(!ok && text.contains(&format!("isolette login {}", reg.host())), "{text}");
    let (ok, text) = isolette(&["login", "-u", USER, "--password-stdin", &reg.host()], "wrong-password\n");
    assert!(!ok && text.contains("authentication") && !text.contains("wrong-password"), "{text}");
    assert!(!home.path().join("config.json").exists());
    let (ok, text) = isolette(&["login", "-u", USER, "--password-stdin", &reg.host()], &format!("{PASSWORD}\n"));
    assert!(ok && !text.contains(PASSWORD), "{text}");
    let config = home.path().join("config.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(saved["auths"][reg.host()]["auth"].is_string(), "{saved}");
    let (ok, text) = isolette(&["image", "pull", "-q", &name], "");
    assert!(ok, "{text}");
    // Nothing secret in the store.
    let grep = Command::new("grep").args(["-r", "-l", PASSWORD]).arg(store.path()).output().unwrap();
    assert!(grep.stdout.is_empty(), "{}", String::from_utf8_lossy(&grep.stdout));
    let (ok, _) = isolette(&["logout", &reg.host()], "");
    assert!(ok);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(saved["auths"].get(reg.host()).is_none(), "{saved}");
}

#[test]
fn bearer_tokens_anonymous_pull_and_authenticated_push() {
    require_tools!();
    let reg = Registry::start(false, Auth::Token);
    let (_d, store) = new_store();
    store.import(&fixtures().join("two-layer.oci.tar"), Some("two:1"), &mut |_| {}).unwrap();
    let target = format!("{}/team/two:1", reg.host());
    // Anonymous callers get pull only: the push is refused, saying how to log in.
    let err = store.push(
        "two:1",
        Some(&target),
        &RegistryOptions::new().credentials(Credentials { username: String::new(), password: String::new() }),
        &quiet(),
    );
    let err = err.unwrap_err().to_string();
    assert!(err.contains("registry 127.0.0.1") && !err.contains(PASSWORD), "{err}");
    let creds = Credentials { username: USER.into(), password: PASSWORD.into() };
    let digest = store.push("two:1", Some(&target), &RegistryOptions::new().credentials(creds), &quiet()).unwrap();
    let (_d2, fresh) = new_store();
    let pulled = fresh.pull(&target, &RegistryOptions::new(), &quiet()).unwrap();
    assert_eq!(pulled.manifest, Some(digest));
    let log = std::fs::read_to_string(reg.dir.path().join("token.log")).unwrap();
    assert!(log.contains(&format!("user={USER} scope=repository:team/two:pull,push")), "{log}");
    assert!(log.contains("user=- scope=repository:team/two:pull\n"), "{log}");
}

#[test]
fn bad_references_and_options_are_config_errors() {
    let (_d, store) = new_store();
    for bad in ["", "Python", "a//b", "x@sha256:12", "localhost:99999/x"] {
        let err = store.pull(bad, &RegistryOptions::new(), &quiet()).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
    }
    let err = store.pull("localhost:1/x", &RegistryOptions::new().platform("linux"), &quiet()).unwrap_err();
    assert!(err.to_string().contains("OS/ARCH"), "{err}");
    let err = store.pull("localhost:1/x", &RegistryOptions::new().concurrency(0), &quiet()).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    // Nothing listens on port 1: a registry error naming it.
    let err = store.pull("localhost:1/x", &RegistryOptions::new(), &quiet()).unwrap_err();
    assert!(matches!(&err, Error::Registry { registry, .. } if registry == "localhost:1"), "{err}");
    assert_empty(&store, "refused connection");
}

// ---- A registry of the test's own that misbehaves on purpose ----

/// What the fake registry does wrong.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    /// The first manifest request gets a 429.
    RateLimitedOnce,
    /// The first layer download drops half way; the next honours `Range`.
    DropOnce,
    /// Every layer download drops half way.
    DropAlways,
    /// The layer's bytes differ from its digest.
    BadDigest,
    /// The layer (digests right) is not a tar.
    NotTar,
    /// The manifest is not JSON.
    Malformed,
    /// The manifest is over 4 MiB.
    Huge,
    /// Manifests answer this status.
    Status(u16),
}

struct Fake {
    port: u16,
    requests: Arc<AtomicUsize>,
}

/// A gzipped tar with `hello.txt`, and its diff id.
fn layer() -> (Vec<u8>, String) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", &b"hello\n"[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let diff = sha(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff)
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn start_fake(fault: Fault) -> Fake {
    let (mut blob, mut diff_id) = layer();
    if fault == Fault::NotTar {
        blob = b"this is not a tar archive, not even close to one".repeat(20);
        diff_id = sha(&blob);
    }
    let blob_digest = sha(&blob);
    if fault == Fault::BadDigest {
        blob[5] ^= 0xff; // The gzip header's mtime: still a good stream, another digest.
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}},"config":{{}}}}"#
    )
    .into_bytes();
    let manifest = match fault {
        Fault::Malformed => b"{\"schemaVersion\": 2, \"layers\": [".to_vec(),
        Fault::Huge => vec![b' '; 5 << 20],
        _ => format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{blob_digest}","size":{}}}]}}"#,
            sha(&config),
            config.len(),
            blob.len()
        )
        .into_bytes(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let config_path = format!("/v2/x/blobs/{}", sha(&config));
    let blob_path = format!("/v2/x/blobs/{blob_digest}");
    std::thread::spawn(move || {
        let (mut manifests, mut blobs) = (0, 0);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut range = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
                if let Some(r) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = r.trim().trim_end_matches('-').parse().unwrap_or(0);
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let respond = |s: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                    body.len()
                );
                let _ = s.write_all(body);
            };
            if path == "/v2/" {
                respond(&mut stream, "200 OK", "", b"{}");
            } else if path.starts_with("/v2/x/manifests/") {
                manifests += 1;
                match fault {
                    Fault::RateLimitedOnce if manifests == 1 => {
                        respond(&mut stream, "429 Too Many Requests", "Retry-After: 0\r\n", b"")
                    }
                    Fault::Status(code) => respond(
                        &mut stream,
                        &format!("{code} Nope"),
                        "",
                        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                    ),
                    _ => respond(
                        &mut stream,
                        "200 OK",
                        "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                        &manifest,
                    ),
                }
            } else if path == config_path {
                respond(&mut stream, "200 OK", "", &config);
            } else if path == blob_path {
                blobs += 1;
                let drop = fault == Fault::DropAlways || (fault == Fault::DropOnce && blobs == 1);
                let rest = &blob[range.min(blob.len())..];
                let status = if range > 0 { "206 Partial Content" } else { "200 OK" };
                let _ =
                    write!(stream, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", rest.len());
                let _ = stream.write_all(if drop { &rest[..rest.len() / 2] } else { rest });
            } else {
                respond(&mut stream, "404 Not Found", "", b"");
            }
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = reader.read(&mut [0; 1]);
        }
    });
    Fake { port, requests }
}

#[test]
fn retries_and_resumes_recover() {
    for fault in [Fault::RateLimitedOnce, Fault::DropOnce] {
        let fake = start_fake(fault);
        let (_d, store) = new_store();
        let record = store.pull(&format!("127.0.0.1:{}/x:1", fake.port), &RegistryOptions::new(), &quiet()).unwrap();
        let image = store.image(&record.name).unwrap();
        let layer = image.layers()[0].join("hello.txt");
        assert_eq!(std::fs::read(&layer).unwrap(), b"hello\n", "{fault:?}");
        assert!(fake.requests.load(Ordering::SeqCst) >= 5, "{fault:?}");
    }
}

#[test]
fn a_bad_registry_is_a_clear_error_and_leaves_nothing() {
    for (fault, says) in [
        (Fault::DropAlways, "reconnections failed"),
        (Fault::BadDigest, "digest mismatch"),
        (Fault::NotTar, "tar"),
        (Fault::Malformed, "malformed manifest"),
        (Fault::Huge, "limit"),
        (Fault::Status(404), "not found (MANIFEST_UNKNOWN: manifest unknown)"),
        (Fault::Status(401), "isolette login"),
        (Fault::Status(403), "denied"),
        (Fault::Status(500), "HTTP 500"),
    ] {
        let fake = start_fake(fault);
        let (_d, store) = new_store();
        let err = store.pull(&format!("127.0.0.1:{}/x:1", fake.port), &RegistryOptions::new(), &quiet()).unwrap_err();
        assert!(err.to_string().contains(says), "{fault:?}: {err}");
        assert_empty(&store, &format!("{fault:?}"));
    }
}
