//! `isolette compose` on the real kernel: a project comes up in dependency order on its own
//! network with Compose v2's names, a second `up` recreates only what changed, `stop` and
//! `up` start the same sandboxes again, restart policies and healthchecks are carried out
//! by the supervisors, an unhealthy dependency stops `up` before its dependents, and bad
//! input (a malformed file, a cycle, a port in use, a missing image, Ctrl-C) is a clear
//! error that leaves nothing running. Every test ends with `down` and checks that no
//! process, network or cgroup of the project is left.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{cli, require_root};
use serde_json::Value;

/// A project directory and the CLI with state, networks and store of its own.
struct Project {
    exe: &'static str,
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
    networks: tempfile::TempDir,
    store: tempfile::TempDir,
    mark: (String, String),
}

impl Project {
    fn new(exe: &'static str, yaml: &str) -> Project {
        let p = Project {
            exe,
            dir: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
            networks: tempfile::tempdir().unwrap(),
            store: tempfile::tempdir().unwrap(),
            mark: common::marker(),
        };
        p.write(yaml);
        p
    }

    /// Writes `compose.yaml`, the test image and the mark filled in.
    fn write(&self, yaml: &str) {
        let image = common::images_dir().join("debian-python");
        let text = yaml.replace("IMAGE", image.to_str().unwrap()).replace("MARK", &self.mark.1);
        std::fs::write(self.dir.path().join("compose.yaml"), text).unwrap();
    }

    /// The CLI in the project's directory, with its state, networks and store.
    fn cli(&self) -> Command {
        let mut cmd = Command::new(self.exe);
        cmd.current_dir(self.dir.path())
            .env("ISOLETTE_STATE", self.state.path())
            .env("ISOLETTE_NETWORKS", self.networks.path())
            .env("ISOLETTE_STORE", self.store.path())
            .env("COMPOSE_PROJECT_NAME", "proj")
            .env(&self.mark.0, &self.mark.1)
            .stdin(Stdio::null());
        cmd
    }

    /// `isolette compose ARGS`.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.cli();
        cmd.arg("compose").args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// The project's sandboxes, as `isolette ps -a --json` shows them (not `compose ps`,
    /// which needs a file that loads), with their service.
    fn ps(&self) -> Vec<Value> {
        let out = self.cli().args(["ps", "-a", "--json"]).output().unwrap();
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["labels"]["com.docker.compose.project"] == "proj")
            .map(|r| {
                let mut r = r.clone();
                r["service"] = r["labels"]["com.docker.compose.service"].clone();
                r
            })
            .collect()
    }

    fn row(&self, name: &str) -> Option<Value> {
        self.ps().into_iter().find(|r| r["name"] == name)
    }

    /// Waits up to `secs` for `name`'s status to start with `want`.
    fn wait_status(&self, name: &str, want: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let row = self.row(name);
            if row.as_ref().is_some_and(|r| r["status"].as_str().unwrap_or("").starts_with(want)) {
                return row.unwrap();
            }
            assert!(Instant::now() < deadline, "{name} never became {want}: {row:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The networks the project's networks directory holds.
    fn networks(&self) -> Vec<String> {
        std::fs::read_dir(self.networks.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// `down`, then: no sandbox, no network, no process of the project, no cgroup of its
    /// supervisors.
    fn down_and_check(&self, supervisors: &[u32]) {
        self.ok(&["down", "--remove-orphans"]);
        assert_eq!(self.ps(), Vec::<Value>::new());
        assert_eq!(self.networks(), Vec::<String>::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !common::marked_processes(&self.mark).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<u32> = common::marked_processes(&self.mark).into_iter().filter(|p| !gone(*p)).collect();
        assert_eq!(left, Vec::<u32>::new(), "processes of the project are left");
        for pid in supervisors {
            assert!(gone(*pid), "supervisor {pid} is left");
            assert_eq!(common::cgroups_of(*pid), Vec::<PathBuf>::new(), "cgroups of supervisor {pid} are left");
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(self.networks.path().to_str().unwrap()), "a network's namespace is still mounted");
    }

    /// The supervisors' pids of the project's running sandboxes.
    fn supervisors(&self) -> Vec<u32> {
        std::fs::read_dir(self.state.path())
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("started")).ok())
            .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter_map(|v| v["supervisor"].as_u64().map(|p| p as u32))
            .collect()
    }
}

impl Drop for Project {
    /// A test that failed halfway takes its project down too (a network's namespace mount
    /// would outlive the temp directory).
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans"]);
        for n in self.networks() {
            let _ = nix::mount::umount2(&self.networks.path().join(n).join("netns"), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Whether a process is gone (a zombie nobody reaps counts as gone: it runs nothing).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Skips unless root, the test image and slirp4netns are there.
fn ready() -> bool {
    if common::image("debian-python").is_none() {
        common::skip(module_path!(), "the debian-python test image is missing");
        return false;
    }
    if !Path::new("/usr/bin/slirp4netns").exists() {
        common::skip(module_path!(), "slirp4netns is missing (scripts/setup.sh installs it)");
        return false;
    }
    true
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A TCP server on `port` answering `db says $GREETING`.
const DB: &str = "import os, socket\n\
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('0.0.0.0', 9000)); t.listen()\n\
print('db ready', flush=True)\n\
while True:\n    c, _ = t.accept(); c.sendall(('db says ' + os.environ['GREETING']).encode()); c.close()\n";

/// A TCP server on 8000 answering what `db` (by its service name) said.
const WEB: &str = "import socket\n\
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('0.0.0.0', 8000)); t.listen()\n\
print('web ready', flush=True)\n\
while True:\n    c, _ = t.accept()\n    d = socket.create_connection(('db', 9000), timeout=5).recv(100)\n    c.sendall(b'web saw: ' + d); c.close()\n";

fn app_yaml(port: u16) -> String {
    format!(
        r#"
services:
  web:
    image: IMAGE
    command: ["python3", "-c", {web}]
    ports: ["127.0.0.1:{port}:8000"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    depends_on:
      db: {{condition: service_healthy}}
  db:
    image: IMAGE
    command: ["python3", "-c", {db}]
    environment:
      GREETING: ${{GREETING:-hello}}
      ISOLETTE_TEST_MARK: MARK
    healthcheck:
      test: ["CMD", "python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 9000), timeout=1)"]
      interval: 200ms
      retries: 50
"#,
        web = serde_json::to_string(WEB).unwrap(),
        db = serde_json::to_string(DB).unwrap(),
    )
}

/// What web answers on `port`. `--wait` waits for a service without a healthcheck to
/// run, not to listen: until web listens, slirp4netns accepts and closes at once, so an
/// empty answer is tried again (for up to 5 s).
fn get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut got = String::new();
        TcpStream::connect(("127.0.0.1", port)).unwrap().read_to_string(&mut got).unwrap();
        if !got.is_empty() || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_project_comes_up_in_order_recreates_only_what_changed_and_goes_down_leaving_nothing() {
    let _serial = common::serial();
    require_root!();
    if !ready() {
        return;
    }
    let port = free_port();
    let p = Project::new(cli!(), &app_yaml(port));
    let said = p.ok(&["up", "-d", "--wait"]);
    assert!(said.find("Sandbox proj-db-1  Started").unwrap() < said.find("Sandbox proj-web-1  Started").unwrap());
    assert!(said.contains("Network proj_default  Created"), "{said}");
    assert_eq!(p.networks(), ["proj_default"]);
    let db = p.wait_status("proj-db-1", "running (healthy)", 1);
    let web = p.wait_status("proj-web-1", "running", 1);
    assert_eq!(web["ports"][0], format!("127.0.0.1:{port}->8000/tcp"));
    assert_eq!(web["service"], "web");
    assert_eq!(get(port), "web saw: db says hello");
    // The logs, each line after its service's prefix (once the supervisors have copied
    // them: a log may lag what its program has done).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = p.ok(&["logs"]);
        if logs.contains("db-1   | db ready\n") && logs.contains("web-1  | web ready\n") {
            break;
        }
        assert!(Instant::now() < deadline, "{logs}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing changed: nothing recreated.
    let again = p.ok(&["up", "-d"]);
    assert!(again.contains("proj-db-1  Running") && again.contains("proj-web-1  Running"), "{again}");
    assert!(!again.contains("Recreate"), "{again}");
    // db's environment changed: db alone is made again.
    let out = p.command(&["up", "-d", "--wait"]).env("GREETING", "bye").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("proj-db-1  Recreate") && said.contains("proj-web-1  Running"), "{said}");
    assert_ne!(p.row("proj-db-1").unwrap()["id"], db["id"]);
    assert_eq!(p.row("proj-web-1").unwrap()["id"], web["id"]);
    assert_eq!(get(port), "web saw: db says bye");
    // Stopped, then up: the same sandboxes start again.
    p.ok(&["stop"]);
    assert!(p.ps().iter().all(|r| !r["status"].as_str().unwrap().starts_with("running")), "{:?}", p.ps());
    let out = p.command(&["up", "-d", "--wait"]).env("GREETING", "bye").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("Recreate") && said.contains("proj-web-1  Started"), "{said}");
    assert_eq!(p.row("proj-web-1").unwrap()["id"], web["id"]);
    assert_eq!(get(port), "web saw: db says bye");
    let supervisors = p.supervisors();
    assert_eq!(supervisors.len(), 2);
    p.down_and_check(&supervisors);
    TcpListener::bind(("127.0.0.1", port)).expect("the published port is free again");
}

#[test]
fn restart_policies_are_carried_out_by_the_supervisor() {
    let _serial = common::serial();
    require_root!();
    if !ready() {
        return;
    }
    // A published port of its own: each restart binds it again.
    let p = Project::new(
        cli!(),
        &r#"
services:
  flaky:
    image: IMAGE
    command: ["sh", "-c", "echo run; exit 3"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    ports: ["127.0.0.1:PORT:8000"]
    restart: on-failure:3
  steady:
    image: IMAGE
    command: ["sleep", "600"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    restart: unless-stopped
"#
        .replace("PORT", &free_port().to_string()),
    );
    p.ok(&["up", "-d"]);
    // Three restarts, then it stays down: four runs in all.
    let row = p.wait_status("proj-flaky-1", "exited (3)", 20);
    assert_eq!(row["status"], "exited (3)");
    let logs = p.ok(&["logs", "flaky"]);
    assert_eq!(logs.matches("flaky-1  | run\n").count(), 4, "{logs}");
    // `unless-stopped` is not started again after `stop`.
    p.wait_status("proj-steady-1", "running", 5);
    p.ok(&["stop", "-t", "1", "steady"]);
    std::thread::sleep(Duration::from_millis(500));
    let status = p.row("proj-steady-1").unwrap()["status"].as_str().unwrap().to_string();
    assert!(!status.starts_with("running"), "{status}");
    p.down_and_check(&[]);
}

#[test]
fn an_unhealthy_dependency_stops_up_and_its_dependents_never_start() {
    let _serial = common::serial();
    require_root!();
    if !ready() {
        return;
    }
    let p = Project::new(
        cli!(),
        r#"
services:
  web:
    image: IMAGE
    command: ["sleep", "600"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    depends_on:
      db: {condition: service_healthy}
  db:
    image: IMAGE
    command: ["sleep", "600"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    healthcheck: {test: "exit 1", interval: 100ms, retries: 2}
"#,
    );
    let out = p.run(&["up", "-d"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{said}");
    assert!(said.contains("dependency failed to start: proj-db-1 is unhealthy"), "{said}");
    assert!(p.row("proj-web-1").is_none(), "a dependent started: {:?}", p.ps());
    // What `up` started is stopped again, and its network is gone.
    assert!(!p.row("proj-db-1").unwrap()["status"].as_str().unwrap().starts_with("running"));
    assert_eq!(p.networks(), Vec::<String>::new());
    p.down_and_check(&[]);
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing_running() {
    let _serial = common::serial();
    require_root!();
    if !ready() {
        return;
    }
    let p = Project::new(cli!(), "services:\n  web:\n    image: [unclosed\n");
    let out = p.run(&["up", "-d", "--json"]);
    assert_eq!(out.status.code(), Some(125));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["status"], "setup_error");
    assert!(json["error"]["message"].as_str().unwrap().contains("compose.yaml: line 4 column 1"), "{json}");
    let cases: &[(&str, &str)] = &[
        (
            "services:\n  a: {image: IMAGE, depends_on: [b]}\n  b: {image: IMAGE, depends_on: [a]}\n",
            "cycle: a -> b -> a",
        ),
        ("services:\n  a: {image: ./nowhere}\n", "image directory"),
        ("services:\n  a: {image: not-in-the-store}\n", "`not-in-the-store` is not in the store"),
        ("services:\n  a: {image: IMAGE, deploy: {replicas: 2}}\n", "services.a.deploy"),
    ];
    for (yaml, want) in cases {
        p.write(yaml);
        let out = p.run(&["up", "-d"]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(125) && said.contains(want), "{yaml}: {said}");
        assert_eq!(p.ps(), Vec::<Value>::new(), "{yaml}");
        assert_eq!(p.networks(), Vec::<String>::new(), "{yaml}");
    }
    // A port in use: the service before it is stopped again, the network removed.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    p.write(&app_yaml(port));
    let out = p.run(&["up", "-d"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{said}");
    assert!(said.contains(&format!("127.0.0.1:{port}->8000/tcp")) && said.contains("cannot listen"), "{said}");
    assert!(!p.row("proj-db-1").unwrap()["status"].as_str().unwrap().starts_with("running"));
    assert!(p.row("proj-web-1").is_none());
    assert_eq!(p.networks(), Vec::<String>::new());
    drop(taken);
    // Ctrl-C while `up` waits for a healthcheck: what it started is stopped again.
    p.write(&app_yaml(free_port()).replace("interval: 200ms", "interval: 1h"));
    let mut up = p.command(&["up", "-d"]).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.row("proj-db-1").is_some_and(|r| r["status"].as_str().unwrap().starts_with("running")) {
        assert!(Instant::now() < deadline, "db never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let status = up.wait().unwrap();
    let mut said = String::new();
    up.stderr.take().unwrap().read_to_string(&mut said).unwrap();
    assert_eq!(status.code(), Some(125), "{said}");
    assert!(said.contains("interrupted"), "{said}");
    assert!(!p.row("proj-db-1").unwrap()["status"].as_str().unwrap().starts_with("running"));
    assert!(p.row("proj-web-1").is_none());
    assert_eq!(p.networks(), Vec::<String>::new());
    p.down_and_check(&[]);
}

/// The library's way ([`isolette::compose::Project::up`]): the project in this process,
/// with a networks directory and a store of its own.
struct InProcess {
    dir: tempfile::TempDir,
    networks_dir: tempfile::TempDir,
    store_dir: tempfile::TempDir,
    mark: (String, String),
}

impl InProcess {
    fn new(yaml: &str) -> InProcess {
        let p = InProcess {
            dir: tempfile::tempdir().unwrap(),
            networks_dir: tempfile::tempdir().unwrap(),
            store_dir: tempfile::tempdir().unwrap(),
            mark: common::marker(),
        };
        let image = common::images_dir().join("debian-python");
        let text = yaml.replace("IMAGE", image.to_str().unwrap()).replace("MARK", &p.mark.1);
        std::fs::write(p.dir.path().join("compose.yaml"), text).unwrap();
        p
    }

    fn up(&self, wait: bool) -> isolette::Result<isolette::compose::RunningProject> {
        use isolette::compose::{LoadOptions, UpOptions};
        let options =
            LoadOptions::new().working_dir(self.dir.path()).project_name("lib").environment(Default::default());
        let project = isolette::compose::Project::load(&options)?;
        let mut up = UpOptions::default();
        up.wait = wait;
        let store = isolette::Store::open(self.store_dir.path())?;
        let networks = isolette::Networks::open(self.networks_dir.path())?;
        let mut said = Vec::new();
        let running = project.up(&store, &networks, &up, &mut |line| said.push(line.to_string()));
        assert!(running.is_err() || said.iter().any(|l| l == " Network lib_default  Created"), "{said:?}");
        running
    }

    /// No process of the project, no network, no namespace mount, no volume.
    fn check_nothing_left(&self) {
        let left: Vec<u32> = common::marked_processes(&self.mark).into_iter().filter(|p| !gone(*p)).collect();
        assert_eq!(left, Vec::<u32>::new(), "processes of the project are left");
        let networks: Vec<_> =
            std::fs::read_dir(self.networks_dir.path()).unwrap().flatten().filter(|e| e.path().is_dir()).collect();
        assert!(networks.is_empty(), "networks are left: {networks:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(self.networks_dir.path().to_str().unwrap()), "a network's namespace is mounted");
    }
}

#[test]
fn a_project_comes_up_in_this_process_and_goes_down_with_its_owner() {
    let _serial = common::serial();
    require_root!();
    if !ready() {
        return;
    }
    let port = free_port();
    let yaml = app_yaml(port).replace(
        "    environment: [ISOLETTE_TEST_MARK=MARK]\n",
        "    environment: [ISOLETTE_TEST_MARK=MARK]\n    volumes: [data:/data]\n",
    ) + "volumes:\n  data:\n";
    let p = InProcess::new(&yaml);
    let running = p.up(true).unwrap();
    let ps = running.ps();
    assert_eq!(ps.iter().map(|s| s.service.as_str()).collect::<Vec<_>>(), ["db", "web"]);
    assert_eq!(ps[0].health, Some(isolette::compose::Health::Healthy), "{ps:?}");
    assert_eq!(ps[1].to_json()["state"], "running");
    assert_eq!(ps[1].to_json()["name"], "lib-web-1");
    assert_eq!(ps[1].ports[0].host_port, port);
    assert_eq!(get(port), "web saw: db says hello");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&running.logs("web").unwrap().0).contains("web ready\n") {
        assert!(Instant::now() < deadline, "web's log never said it was ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(running.logs("nope").is_err());
    let store = isolette::Store::open(p.store_dir.path()).unwrap();
    assert!(store.volume_record("lib_data").is_ok());
    // `down` keeps the named volume; dropping a second `up` takes it down too.
    running.down(false).unwrap();
    p.check_nothing_left();
    TcpListener::bind(("127.0.0.1", port)).expect("the published port is free again");
    assert!(store.volume_record("lib_data").is_ok(), "down without volumes keeps them");
    drop(p.up(false).unwrap());
    p.check_nothing_left();
    p.up(false).unwrap().down(true).unwrap();
    assert!(store.volume_record("lib_data").is_err(), "down with volumes removes them");
    p.check_nothing_left();
}

#[test]
fn in_this_process_an_unhealthy_dependency_is_an_error_and_restarts_are_carried_out() {
    let _serial = common::serial();
    require_root!();
    if !ready() {
        return;
    }
    let p = InProcess::new(
        r#"
services:
  db:
    image: IMAGE
    command: ["sleep", "600"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    healthcheck: {test: ["CMD", "false"], interval: 100ms, retries: 2}
  web:
    image: IMAGE
    command: ["sleep", "600"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    depends_on: {db: {condition: service_healthy}}
"#,
    );
    let err = p.up(false).unwrap_err();
    assert_eq!(err.to_string(), "invalid config: dependency failed to start: lib-db-1 is unhealthy");
    p.check_nothing_left();
    let p = InProcess::new(
        r#"
services:
  flaky:
    image: IMAGE
    command: ["sh", "-c", "echo run; exit 3"]
    environment: [ISOLETTE_TEST_MARK=MARK]
    restart: on-failure:2
"#,
    );
    let running = p.up(false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while running.ps()[0].phase != isolette::compose::Phase::Exited {
        assert!(Instant::now() < deadline, "{:?}", running.ps());
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = &running.ps()[0];
    assert_eq!((status.restarts, status.outcome.as_ref().unwrap().exit_code), (2, Some(3)));
    assert_eq!(running.logs("flaky").unwrap().0, b"run\nrun\nrun\n");
    running.down(true).unwrap();
    p.check_nothing_left();
}
