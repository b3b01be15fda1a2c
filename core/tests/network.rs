//! Networks on the real kernel: loopback up in `none`, outbound through pasta to a test
//! "internet" (a tap device's address on the host: there is no `dummy` module here),
//! host loopback out of reach unless allowed, published TCP and UDP ports that live
//! exactly as long as the sandbox, clear errors, the same for an unprivileged caller, and
//! nothing left after many runs.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{busybox, require_root, stdout};
use isolette::{Error, Network, Outcome, Publish, Sandbox, Status};

/// Returns from the test unless pasta is installed.
macro_rules! require_pasta {
    () => {
        if !std::path::Path::new("/usr/bin/pasta").exists() {
            common::skip(module_path!(), "pasta is missing (scripts/setup.sh installs passt)");
            return;
        }
    };
}

fn sh(image: &isolette::Image, network: Network, script: &str) -> Outcome {
    Sandbox::builder(image).network(network).wall_time(Duration::from_secs(10)).run(["/bin/sh", "-c", script]).unwrap()
}

/// A test "internet": an address on a tap device of the host, and a TCP server there that
/// answers `internet` to every connection. Removed when dropped.
struct Internet {
    dev: String,
    addr: Ipv4Addr,
    port: u16,
}

impl Internet {
    fn start(n: u8) -> Internet {
        let dev = format!("isotap{}x{n}", std::process::id() % 100_000);
        let addr = Ipv4Addr::new(10, 77, n, 1);
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ip(&["tuntap", "add", "dev", &dev, "mode", "tap"]);
        let mut internet = Internet { dev, addr, port: 0 };
        ip(&["addr", "add", &format!("{addr}/24"), "dev", &internet.dev]);
        ip(&["link", "set", &internet.dev, "up"]);
        let listener = TcpListener::bind((addr, 0)).unwrap();
        internet.port = listener.local_addr().unwrap().port();
        serve(listener, b"internet\n");
        internet
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.dev]).output();
    }
}

/// Answers `reply` to every connection, from a thread of its own.
fn serve(listener: TcpListener, reply: &'static [u8]) {
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(reply);
        }
    });
}

/// What a server on 127.0.0.1:`port` sends before it closes, once it is `want`: tried
/// for up to 5 s, since the server may not listen yet.
fn greeting(port: u16, want: &str) -> String {
    let mut got = String::new();
    for _ in 0..100 {
        got.clear();
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port))
            && c.read_to_string(&mut got).is_ok()
            && got == want
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    got
}

#[test]
fn none_has_loopback_up_and_nothing_else() {
    let _serial = common::serial(); // one test counts what the whole process holds
    let image = busybox!();
    let out = sh(
        &image,
        Network::None,
        "(echo pong | nc -l -p 9000 &); sleep 0.2; nc 127.0.0.1 9000 </dev/null; ip -o link | wc -l",
    );
    assert_eq!(
        (out.status, stdout(&out)),
        (Status::Ok, "pong\n1\n".into()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A warm sandbox brought it up ahead of its request.
    let pool = Sandbox::builder(&image).pool(1).unwrap();
    assert!(pool.wait_ready(Duration::from_secs(10)));
    let out = pool.builder().run(["/bin/sh", "-c", "ip -o link show lo | grep -c LOWER_UP"]).unwrap();
    assert_eq!((stdout(&out), pool.served()), ("1\n".into(), (1, 0)));
}

#[test]
fn outbound_reaches_the_internet_but_not_host_loopback_unless_allowed() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_root!(); // for the tap device
    require_pasta!();
    let image = busybox!();
    let internet = Internet::start(1);
    let local = TcpListener::bind("127.0.0.1:0").unwrap();
    let local_port = local.local_addr().unwrap().port();
    serve(local, b"host-loopback\n");
    // What a server at `to` greets with, or `unreachable`. In the background and read
    // after a moment: a connection the sandbox half-closes first (nc with no input) may
    // never see the far end's close through pasta.
    let fetch = |to: &str| {
        let f = format!("/tmp/f{}", to.len() + to.bytes().map(usize::from).sum::<usize>());
        format!("(nc {to} </dev/null >{f} 2>/dev/null &); sleep 0.5; cat {f}; [ -s {f} ] || echo unreachable")
    };
    let gateway = "$(ip route | awk '/default/ {print $3}')";
    let script = format!(
        "{}; {}; {}",
        fetch(&format!("{} {}", internet.addr, internet.port)),
        fetch(&format!("{gateway} {local_port}")),
        fetch(&format!("127.0.0.1 {local_port}"))
    );
    let out = sh(&image, Network::Outbound, &script);
    assert_eq!(stdout(&out), "internet\nunreachable\nunreachable\n", "{out:?}");
    // `none` reaches nothing at all.
    let out = sh(&image, Network::None, &fetch(&format!("{} {}", internet.addr, internet.port)));
    assert_eq!(stdout(&out), "unreachable\n");
    // Allowed: the host's loopback answers at the gateway's address.
    let out = Sandbox::builder(&image)
        .network(Network::Outbound)
        .host_loopback(true)
        .run(["/bin/sh", "-c", &fetch(&format!("{gateway} {local_port}"))])
        .unwrap();
    assert_eq!(stdout(&out), "host-loopback\n", "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn published_tcp_and_udp_ports_live_as_long_as_the_sandbox() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_pasta!();
    let Some(image) = common::image("debian-python") else {
        common::skip(module_path!(), "the debian-python test image is missing");
        return;
    };
    // UDP on loopback keeps its port number (see `Publish`): find one free on the host.
    let udp_port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = format!(
        "import socket, threading\n\
         u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', {udp_port}))\n\
         def echo():\n    d, a = u.recvfrom(100); u.sendto(d.upper(), a)\n\
         threading.Thread(target=echo).start()\n\
         t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(('0.0.0.0', 8000)); t.listen()\n\
         print('ready', flush=True)\n\
         c, _ = t.accept(); c.sendall(b'tcp-ok\\n'); c.close()\n"
    );
    let mut running = Sandbox::builder(&image)
        .network(Network::Outbound)
        .publish(Publish::tcp([127, 0, 0, 1].into(), 0, 8000))
        .publish(Publish::udp([127, 0, 0, 1].into(), udp_port, udp_port))
        .stdout(isolette::Output::Pipe)
        .wall_time(Duration::from_secs(20))
        .spawn(["python3", "-c", &server])
        .unwrap();
    let ports = running.ports().to_vec();
    assert_eq!(ports.len(), 2);
    let tcp = ports[0];
    assert!(tcp.host_port != 0 && tcp.sandbox_port == 8000, "{tcp}");
    let mut out = running.take_stdout().unwrap();
    let mut ready = [0u8; 6];
    out.read_exact(&mut ready).unwrap();
    let mut got = String::new();
    TcpStream::connect((tcp.host_addr, tcp.host_port)).unwrap().read_to_string(&mut got).unwrap();
    assert_eq!(got, "tcp-ok\n");
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(b"ping", ("127.0.0.1", udp_port)).unwrap();
    let mut buf = [0u8; 16];
    let n = udp.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"PING");
    assert_eq!(running.wait().unwrap().status, Status::Ok);
    // The ports went with the sandbox.
    TcpListener::bind((tcp.host_addr, tcp.host_port)).expect("the TCP port is free again");
    UdpSocket::bind(("127.0.0.1", udp_port)).expect("the UDP port is free again");
}

#[test]
fn bad_network_settings_are_clear_errors_before_anything_starts() {
    let _serial = common::serial(); // one test counts what the whole process holds
    let image = busybox!();
    let b = || Sandbox::builder(&image);
    let config_err = |r: isolette::Result<Outcome>| match r {
        Err(Error::Config(m)) => m,
        other => panic!("not a config error: {other:?}"),
    };
    let m = config_err(b().host_loopback(true).run(["/bin/true"]));
    assert!(m.contains("host_loopback"), "{m}");
    for bad in ["x", "1:2:3:4", "80:80/sctp", "99999:1"] {
        assert!(matches!(Publish::parse(bad), Err(Error::Config(_))), "{bad}");
    }
    require_pasta!();
    // A host port in use, named before anything is made.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let m = config_err(
        b().network(Network::Outbound).publish(Publish::tcp([127, 0, 0, 1].into(), port, 80)).run(["/bin/true"]),
    );
    assert!(m.contains(&format!("127.0.0.1:{port}->80/tcp")) && m.contains("cannot listen"), "{m}");
    let m = config_err(
        b().network(Network::Outbound).publish(Publish::udp([127, 0, 0, 1].into(), 5353, 53)).run(["/bin/true"]),
    );
    assert!(m.contains("HOSTPORT = PORT"), "{m}");
}

#[test]
fn cli_publishes_a_detached_server_and_stop_frees_the_port() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_pasta!();
    let image = busybox!();
    let cli = common::cli!();
    let state = tempfile::tempdir().unwrap();
    let isolette = |args: &[&str]| {
        let out = Command::new(cli).args(args).env("ISOLETTE_STATE", state.path()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let root = image.layers()[0].to_str().unwrap().to_string();
    let spec = format!("{port}:8000");
    let (code, id) = isolette(&[
        "run",
        "-d",
        "-p",
        &spec,
        "--wall-time",
        "30s",
        "--image",
        &root,
        "--",
        "sh",
        "-c",
        "while true; do echo served | nc -l -p 8000; done",
    ]);
    assert_eq!(code, Some(0), "{id}");
    let id = id.trim().to_string();
    let (_, ps) = isolette(&["ps", "--json"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->8000/tcp")), "{ps}");
    let got = greeting(port, "served\n");
    assert_eq!(got, "served\n");
    assert_eq!(isolette(&["stop", "-t", "1", &id]).0, Some(0));
    TcpListener::bind(("127.0.0.1", port)).expect("stop freed the port");
    // The README's example: python's http.server, published, answers a GET.
    if let Some(python) = common::image("debian-python") {
        let root = python.layers()[0].to_str().unwrap().to_string();
        let args = ["run", "-d", "-p", &spec, "--wall-time", "30s", "--image", &root, "--"];
        let (code, id) = isolette(&[&args[..], &["python3", "-m", "http.server", "8000"]].concat());
        assert_eq!(code, Some(0), "{id}");
        // pasta takes the connection at once; until the server listens, it closes it empty.
        let mut status = String::new();
        for _ in 0..100 {
            status.clear();
            if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
                let _ = c.read_to_string(&mut status);
                if !status.is_empty() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(status.starts_with("HTTP/1.0 200"), "{status}");
        assert_eq!(isolette(&["stop", "-t", "1", id.trim()]).0, Some(0));
    }
    // A missing pasta is named, with what to do; nothing starts.
    let out = Command::new(cli)
        .args(["run", "--network", "outbound", "--image", &root, "--", "true"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(125) && err.contains("apt-get install passt"), "{err}");
    let (code, err) = isolette(&["run", "-p", "nonsense", "--image", &root, "--", "true"]);
    assert!(code == Some(125) && err.contains("HOSTPORT:PORT"), "{err}");
}

#[test]
fn an_unprivileged_caller_gets_the_same_network() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_root!(); // to become an unprivileged user, and for the tap device
    require_pasta!();
    let image = busybox!();
    let cli = common::cli!();
    if !isolette::HostReport::probe().user_namespaces {
        common::skip(module_path!(), "user namespaces are disabled on this host");
        return;
    }
    let internet = Internet::start(2);
    let local = TcpListener::bind("127.0.0.1:0").unwrap();
    let local_port = local.local_addr().unwrap().port();
    serve(local, b"host-loopback\n");
    let root = image.layers()[0].to_str().unwrap().to_string();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = format!(
        "(nc {} {} </dev/null >/tmp/a &); (nc 127.0.0.1 {local_port} </dev/null >/tmp/b 2>&1 &); sleep 0.5; \
         cat /tmp/a; grep -q host-loopback /tmp/b || echo unreachable; echo served | nc -l -p 8000",
        internet.addr, internet.port
    );
    let spec = format!("{port}:8000");
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", cli, "run", "--network", "outbound"])
        .args(["-p", &spec, "--wall-time", "20s", "--image", &root, "--", "/bin/sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let got = greeting(port, "served\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(got, "served\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "internet\nunreachable\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Egress rules hold for this caller too.
    let deny = format!("{}/32", internet.addr);
    let probe =
        format!("(nc {} {} </dev/null >/tmp/a 2>&1 &); sleep 0.5; cat /tmp/a; echo .", internet.addr, internet.port);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", cli, "run", "--network", "outbound"])
        .args(["--egress-deny", &deny, "--image", &root, "--", "/bin/sh", "-c", &probe])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), ".\n", "{}", String::from_utf8_lossy(&out.stderr));
    // A privileged host port is refused for this caller.
    let low: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap().trim().parse().unwrap();
    if low <= 80 {
        return; // this host lets anyone listen on port 80
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", cli, "run", "--network", "outbound"])
        .args(["-p", "80:8000", "--image", &root, "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(125) && err.contains("need root"), "{err}");
}

#[test]
fn many_networked_runs_leave_no_process_or_port() {
    let _serial = common::serial();
    require_pasta!();
    let image = busybox!();
    let before = common::Footprint::warm(&image);
    let mut ports = Vec::new();
    for i in 0..200 {
        let b = Sandbox::builder(&image).network(Network::Outbound);
        let b = if i % 2 == 0 { b.publish(Publish::tcp([127, 0, 0, 1].into(), 0, 8000)) } else { b };
        if i % 10 == 0 {
            let running = b.spawn(["/bin/sleep", "10"]).unwrap();
            ports.extend(running.ports().iter().map(|p| SocketAddr::new(p.host_addr, p.host_port)));
            running.kill();
            assert_eq!(running.wait().unwrap().status, Status::Cancelled);
        } else {
            assert_eq!(b.run(["/bin/true"]).unwrap().status, Status::Ok);
        }
    }
    assert_eq!(common::Footprint::now(), before, "every pasta was reaped, every fd closed");
    for addr in ports {
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} still taken: {e}"));
    }
}

/// Removes the networks it names when dropped, whatever the test did.
struct RemoveNetworks(isolette::Networks, &'static [&'static str]);

impl Drop for RemoveNetworks {
    fn drop(&mut self) {
        for name in self.1 {
            let _ = self.0.remove(name);
        }
    }
}

#[test]
fn named_networks_reach_by_name_and_nothing_else() {
    let _serial = common::serial();
    require_root!();
    let Some(image) = common::image("debian-python") else {
        common::skip(module_path!(), "the debian-python test image is missing");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nets = isolette::Networks::open(dir.path().join("networks")).unwrap();
    let _cleanup = RemoveNetworks(nets.clone(), &["front", "other"]);
    nets.create("front", None).unwrap();
    nets.create("other", Some("10.89.200.0/24")).unwrap();
    assert!(matches!(nets.create("front", None), Err(Error::Config(_))));
    assert!(matches!(nets.network("nope"), Err(Error::Config(m)) if m.contains("front, other")));
    let internet = Internet::start(4);
    let on = |name: &str, host: &str| {
        Sandbox::builder(&image)
            .network(Network::Named(nets.network(name).unwrap()))
            .hostname(host)
            .wall_time(Duration::from_secs(20))
    };
    let server = "import socket\n\
                  t = socket.socket(); t.bind(('0.0.0.0', 8000)); t.listen()\n\
                  print('ready', flush=True)\n\
                  while True:\n    c, _ = t.accept(); c.sendall(b'hello from db\\n'); c.close()\n";
    let mut db = on("front", "db").stdout(isolette::Output::Pipe).spawn(["python3", "-c", server]).unwrap();
    let mut ready = [0u8; 6];
    db.take_stdout().unwrap().read_exact(&mut ready).unwrap();
    let client = "import socket, sys\n\
                  host = sys.argv[1]\n\
                  try:\n    print(socket.create_connection((host, 8000), timeout=2).recv(100).decode(), end='')\n\
                  except OSError as e:\n    print('unreachable', type(e).__name__)\n";
    let out = on("front", "app").run(["python3", "-c", client, "db"]).unwrap();
    assert_eq!(stdout(&out), "hello from db\n", "{}", String::from_utf8_lossy(&out.stderr));
    let hosts = on("front", "viewer").run(["cat", "/etc/hosts"]).unwrap();
    assert!(stdout(&hosts).contains("\tdb\n") && stdout(&hosts).contains("\tviewer\n"), "{}", stdout(&hosts));
    let members = &nets.list().unwrap()[0].members;
    assert_eq!(members.len(), 1, "only db is left on front: {members:?}");
    let db_ip = members[0].1;
    // Another network reaches neither the name nor the address; nor does the host.
    let out = on("other", "outsider").run(["python3", "-c", client, "db"]).unwrap();
    assert!(stdout(&out).starts_with("unreachable"), "{}", stdout(&out));
    let out = on("other", "outsider").run(["python3", "-c", client, &db_ip.to_string()]).unwrap();
    assert!(stdout(&out).starts_with("unreachable"), "{}", stdout(&out));
    // (Some hosts' upstream accepts every outbound connection: what counts is who answers.)
    let mut from_host = String::new();
    if let Ok(mut c) = TcpStream::connect_timeout(&SocketAddr::from((db_ip, 8000)), Duration::from_millis(500)) {
        c.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let _ = c.read_to_string(&mut from_host);
    }
    assert!(!from_host.contains("hello from db"), "the host reached db");
    // Nor does a member reach out.
    let out = on("front", "app").run(["python3", "-c", client, &internet.addr.to_string()]).unwrap();
    assert!(stdout(&out).starts_with("unreachable"), "{}", stdout(&out));
    // One name per network; a network in use stays.
    assert!(matches!(on("front", "db").run(["true"]), Err(Error::Config(m)) if m.contains("named `db`")));
    assert!(matches!(nets.remove("front"), Err(Error::Config(m)) if m.contains("in use by db")));
    db.kill();
    assert_eq!(db.wait().unwrap().status, Status::Cancelled);
    assert!(nets.list().unwrap().iter().all(|r| r.members.is_empty()));
    nets.remove("front").unwrap();
    nets.remove("other").unwrap();
    assert!(nets.list().unwrap().is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(dir.path().to_str().unwrap()), "a network's namespace is still mounted");
}

#[test]
fn cli_manages_networks_and_refuses_them_to_unprivileged_callers() {
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let cli = common::cli!();
    let dir = tempfile::tempdir().unwrap();
    let nets_dir = dir.path().join("networks");
    let _cleanup = RemoveNetworks(isolette::Networks::open(&nets_dir).unwrap(), &["cli-net"]);
    let isolette = |args: &[&str]| {
        let out = Command::new(cli).args(args).env("ISOLETTE_NETWORKS", &nets_dir).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    assert_eq!(isolette(&["network", "create", "cli-net", "--subnet", "10.89.201.0/24"]).0, Some(0));
    let root = image.layers()[0].to_str().unwrap().to_string();
    let (code, out) =
        isolette(&["run", "--network", "cli-net", "--hostname", "box", "--image", &root, "--", "cat", "/etc/hosts"]);
    assert!(code == Some(0) && out.contains("10.89.201.2\tbox"), "{out}");
    let (_, ls) = isolette(&["network", "ls", "--json"]);
    assert!(ls.contains(r#""name":"cli-net""#) && ls.contains(r#""members":[]"#), "{ls}");
    let (code, out) = isolette(&["run", "--network", "nowhere", "--image", &root, "--", "true"]);
    assert!(code == Some(125) && out.contains("no network `nowhere`"), "{out}");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", cli, "network", "create", "mine"])
        .env("ISOLETTE_NETWORKS", dir.path().join("theirs"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("need root"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(isolette(&["network", "rm", "cli-net"]).0, Some(0));
}

#[test]
fn egress_rules_limit_what_an_outbound_sandbox_reaches() {
    let _serial = common::serial();
    require_root!(); // for the tap device
    require_pasta!();
    let image = busybox!();
    let internet = Internet::start(3);
    let other = TcpListener::bind((internet.addr, 0)).unwrap();
    let other_port = other.local_addr().unwrap().port();
    serve(other, b"other\n");
    let script = format!(
        "(nc {a} {p} </dev/null >/tmp/a 2>&1 &); (nc {a} {other_port} </dev/null >/tmp/b 2>&1 &); \
         (echo served | nc -l -p 8000 &); sleep 0.5; cat /tmp/a /tmp/b; echo .",
        a = internet.addr,
        p = internet.port
    );
    let run = |rules: &[(bool, String)], publish: Option<u16>| {
        let mut b = Sandbox::builder(&image).network(Network::Outbound);
        for (allow, spec) in rules {
            b = b.egress(isolette::EgressRule::parse(*allow, spec).unwrap());
        }
        if let Some(port) = publish {
            b = b.publish(Publish::tcp([127, 0, 0, 1].into(), port, 8000));
        }
        let running = b.stdout(isolette::Output::Capture).spawn(["/bin/sh", "-c", &script]).unwrap();
        let greeting = publish.map(|port| greeting(port, "served\n"));
        let out = running.wait().unwrap();
        (stdout(&out), greeting)
    };
    // Denied: neither server answers.
    let (out, _) = run(&[(false, format!("{}/24", internet.addr))], None);
    assert_eq!(out, ".\n");
    // One address and port allowed: only that one; a published port still serves.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (out, served) = run(&[(true, format!("{}:{}", internet.addr, internet.port))], Some(port));
    assert_eq!((out.as_str(), served.as_deref()), ("internet\n.\n", Some("served\n")));
    // A deny before an allow wins.
    let rules = [(false, format!("{}:{}", internet.addr, internet.port)), (true, format!("{}/24", internet.addr))];
    let (out, _) = run(&rules, None);
    assert_eq!(out, "other\n.\n");
    // Published ports without a network: the server serves, and reaches nothing itself.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let running = Sandbox::builder(&image)
        .publish(Publish::tcp([127, 0, 0, 1].into(), port, 8000))
        .spawn(["/bin/sh", "-c", &script])
        .unwrap();
    assert_eq!(greeting(port, "served\n"), "served\n");
    assert_eq!(stdout(&running.wait().unwrap()), ".\n");
    // Rules of the caller's need an outbound network.
    let none = Sandbox::builder(&image).egress(isolette::EgressRule::parse(true, "1.1.1.1").unwrap());
    assert!(matches!(none.run(["true"]), Err(Error::Config(m)) if m.contains("egress")));
}
