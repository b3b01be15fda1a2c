//! Networks on the real kernel: loopback up in `none`, outbound through slirp4netns to a
//! test "internet" (a test host in a network namespace of the test's own), host loopback,
//! the host's own addresses and link-local destinations out of reach unless allowed,
//! published TCP and UDP ports that live exactly as long as the sandbox, clear errors, the
//! same for an unprivileged caller, and nothing left after many runs.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{busybox, require_root, stdout};
use isolette::{Error, Network, Outcome, Publish, Sandbox, Status};

/// Returns from the test unless slirp4netns is installed.
macro_rules! require_slirp {
    () => {
        if !std::path::Path::new("/usr/bin/slirp4netns").exists() {
            common::skip(module_path!(), "slirp4netns is missing (scripts/setup.sh installs it)");
            return;
        }
    };
}

fn sh(image: &isolette::Image, network: Network, script: &str) -> Outcome {
    Sandbox::builder(image).network(network).wall_time(Duration::from_secs(10)).run(["/bin/sh", "-c", script]).unwrap()
}

/// A test "internet": a test host in a network namespace of the test's own (no byte
/// leaves the machine), and a TCP server there that answers `internet` to every connection.
struct Internet {
    host: common::TestHost,
    addr: Ipv4Addr,
    port: u16,
}

impl Internet {
    fn start(n: u8) -> Internet {
        let host = common::TestHost::start(n);
        let listener = host.listen(host.addr, 0);
        let port = listener.local_addr().unwrap().port();
        serve(listener, b"internet\n");
        Internet { addr: host.addr, host, port }
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

/// A shell line that prints what the server at `to` (`HOST PORT`) greets with, or
/// `unreachable`: busybox nc half-closes at once (no input) and reads to the end.
fn fetch(to: &str) -> String {
    format!("out=$(nc -w 2 {to} </dev/null 2>/dev/null); [ -n \"$out\" ] && echo \"$out\" || echo unreachable")
}

#[test]
fn outbound_reaches_the_internet_but_not_host_loopback_unless_allowed() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_root!(); // for the test host
    require_slirp!();
    let image = busybox!();
    let internet = Internet::start(1);
    let local = TcpListener::bind("127.0.0.1:0").unwrap();
    let local_port = local.local_addr().unwrap().port();
    serve(local, b"host-loopback\n");
    // A metadata-like service at the test host's link-local address.
    let metadata = internet.host.listen(internet.host.link_local, 0);
    let metadata_at = format!("{} {}", internet.host.link_local, metadata.local_addr().unwrap().port());
    serve(metadata, b"metadata\n");
    let gateway = "$(ip route | awk '/default/ {print $3}')";
    let script = [
        fetch(&format!("{} {}", internet.addr, internet.port)),
        fetch(&format!("{gateway} {local_port}")),
        fetch(&format!("127.0.0.1 {local_port}")),
        fetch(&metadata_at),
    ]
    .join("; ");
    let out = sh(&image, Network::Outbound, &script);
    assert_eq!(stdout(&out), "internet\nunreachable\nunreachable\nunreachable\n", "{out:?}");
    // `none` reaches nothing at all.
    let out = sh(&image, Network::None, &fetch(&format!("{} {}", internet.addr, internet.port)));
    assert_eq!(stdout(&out), "unreachable\n");
    // Allowed: the host's loopback answers at the gateway's address; an egress rule opens
    // the link-local address.
    let out = Sandbox::builder(&image)
        .network(Network::Outbound)
        .host_loopback(true)
        .egress(format!("allow:{}", internet.host.link_local).parse().unwrap())
        .egress("allow:0.0.0.0/0".parse().unwrap())
        .run(["/bin/sh", "-c", &[fetch(&format!("{gateway} {local_port}")), fetch(&metadata_at)].join("; ")])
        .unwrap();
    assert_eq!(stdout(&out), "host-loopback\nmetadata\n", "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn published_tcp_and_udp_ports_live_as_long_as_the_sandbox() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_slirp!();
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
    require_slirp!();
    // A host port in use, named before anything is made.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let m = config_err(
        b().network(Network::Outbound).publish(Publish::tcp([127, 0, 0, 1].into(), port, 80)).run(["/bin/true"]),
    );
    assert!(m.contains(&format!("127.0.0.1:{port}->80/tcp")) && m.contains("cannot listen"), "{m}");
    let m = config_err(
        b().network(Network::Outbound).publish(Publish::parse("[::1]:0:53/udp").unwrap()).run(["/bin/true"]),
    );
    assert!(m.contains("IPv4 host addresses only"), "{m}");
}

#[test]
fn cli_publishes_a_detached_server_and_stop_frees_the_port() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_slirp!();
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
    assert!(out.status.code() == Some(125) && err.contains("apt-get install slirp4netns"), "{err}");
    let (code, err) = isolette(&["run", "-p", "nonsense", "--image", &root, "--", "true"]);
    assert!(code == Some(125) && err.contains("HOSTPORT:PORT"), "{err}");
}

/// `isolette ARGS` as user 65534, in a mount namespace of its own where `/dev/net/tun` is
/// a device node of mode `tun_mode` (on a tmpfs over `/dev/net`): the same test on hosts
/// whose device is 0666 and hosts whose device is 0600, and the host's left as it is.
fn unprivileged(tun_mode: &str, cli: &str) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"]);
    cmd.arg(
        "mount -t tmpfs -o mode=0755 tmpfs /dev/net && mknod -m \"$0\" /dev/net/tun c 10 200 && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$@\"",
    );
    cmd.args([tun_mode, cli]);
    cmd
}

#[test]
fn an_unprivileged_caller_gets_the_same_network() {
    let _serial = common::serial(); // one test counts what the whole process holds
    require_root!(); // to become an unprivileged user, and for the test host
    require_slirp!();
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
        "{}; {}; echo served | nc -l -p 8000",
        fetch(&format!("{} {}", internet.addr, internet.port)),
        fetch(&format!("127.0.0.1 {local_port}"))
    );
    let spec = format!("{port}:8000");
    let child = unprivileged("0666", cli)
        .args(["run", "--network", "outbound", "-p", &spec, "--wall-time", "20s", "--image", &root])
        .args(["--", "/bin/sh", "-c", &script])
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
    let out = unprivileged("0666", cli)
        .args(["run", "--network", "outbound", "--egress", &format!("deny:{}/32", internet.addr)])
        .args(["--image", &root, "--", "/bin/sh", "-c", &fetch(&format!("{} {}", internet.addr, internet.port))])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unreachable\n", "{}", String::from_utf8_lossy(&out.stderr));
    // Where the device is 0600, the run fails before anything starts, naming it and the fix.
    for args in [&["--network", "outbound"][..], &["-p", "0:8000"]] {
        let out =
            unprivileged("0600", cli).arg("run").args(args).args(["--image", &root, "--", "true"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(125) && err.contains("/dev/net/tun") && err.contains("chmod 0666"), "{err}");
    }
    let out = unprivileged("0600", cli).arg("check").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("tun for users    no"), "{out:?}");
    let out = unprivileged("0666", cli).arg("check").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("tun for users    yes"), "{out:?}");
    // A privileged host port is refused for this caller.
    let low: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap().trim().parse().unwrap();
    if low <= 80 {
        return; // this host lets anyone listen on port 80
    }
    let out = unprivileged("0666", cli)
        .args(["run", "--network", "outbound", "-p", "80:8000", "--image", &root, "--", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(125) && err.contains("need root"), "{err}");
}

#[test]
fn many_networked_runs_leave_no_process_or_port() {
    let _serial = common::serial();
    require_slirp!();
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
    nets.create("front", None, true).unwrap();
    nets.create("other", Some("10.89.200.0/24"), true).unwrap();
    assert!(matches!(nets.create("front", None, true), Err(Error::Config(_))));
    let m = nets.create("slirps", Some("10.0.2.0/24"), false).unwrap_err().to_string();
    assert!(m.contains("user-mode network"), "{m}");
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
    // Nor does the host: it has no address on the network (no route of its own leads
    // there; a connection attempt would go out by the default route, off the machine, so
    // none is made).
    let addrs = Command::new("ip").args(["-o", "-4", "addr"]).output().unwrap();
    let subnet = format!(" {}.", db_ip.to_string().rsplit_once('.').unwrap().0);
    assert!(!String::from_utf8_lossy(&addrs.stdout).contains(&subnet), "the host is on db's network");
    // Nor does a member of an internal network reach out, or publish a port.
    let out = on("front", "app").run(["python3", "-c", client, &internet.addr.to_string()]).unwrap();
    assert!(stdout(&out).starts_with("unreachable"), "{}", stdout(&out));
    let published = on("front", "web").publish(Publish::tcp([127, 0, 0, 1].into(), 0, 80)).run(["true"]);
    assert!(matches!(published, Err(Error::Config(m)) if m.contains("`front` is internal")));
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
fn a_named_network_that_is_not_internal_reaches_out_and_publishes_ports() {
    let _serial = common::serial();
    require_root!();
    require_slirp!();
    let Some(image) = common::image("debian-python") else {
        common::skip(module_path!(), "the debian-python test image is missing");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let nets = isolette::Networks::open(dir.path().join("networks")).unwrap();
    let _cleanup = RemoveNetworks(nets.clone(), &["open"]);
    assert!(!nets.create("open", None, false).unwrap().internal);
    let internet = Internet::start(7);
    let on = |host: &str| {
        Sandbox::builder(&image)
            .network(Network::Named(nets.network("open").unwrap()))
            .hostname(host)
            .wall_time(Duration::from_secs(20))
    };
    let server = "import socket\n\
                  t = socket.socket(); t.bind(('0.0.0.0', 8000)); t.listen()\n\
                  print('ready', flush=True)\n\
                  while True:\n    c, _ = t.accept(); c.sendall(b'hello from web\\n'); c.close()\n";
    let mut web = on("web")
        .publish(Publish::tcp([127, 0, 0, 1].into(), 0, 8000))
        .stdout(isolette::Output::Pipe)
        .spawn(["python3", "-c", server])
        .unwrap();
    let mut ready = [0u8; 6];
    web.take_stdout().unwrap().read_exact(&mut ready).unwrap();
    let port = web.ports()[0].host_port;
    // The host reaches the published port; a member reaches web by name and the test
    // internet by address, in one run.
    assert_eq!(greeting(port, "hello from web\n"), "hello from web\n");
    let client = "import socket, sys\n\
                  for host, port in zip(sys.argv[1::2], sys.argv[2::2]):\n\
                  \x20   try:\n\
                  \x20       print(socket.create_connection((host, int(port)), timeout=5).recv(100).decode(), end='')\n\
                  \x20   except OSError as e:\n\
                  \x20       print('unreachable', type(e).__name__)\n";
    let (addr, iport) = (internet.addr.to_string(), internet.port.to_string());
    let out = on("app").run(["python3", "-c", client, "web", "8000", &addr, &iport]).unwrap();
    assert_eq!(stdout(&out), "hello from web\ninternet\n", "{}", String::from_utf8_lossy(&out.stderr));
    // An egress rule of the caller's applies outside, never to the network's members.
    let out = on("app")
        .egress(format!("deny:{addr}").parse().unwrap())
        .egress("allow:0.0.0.0/0:1-2".parse().unwrap())
        .run(["python3", "-c", client, "web", "8000", &addr, &iport])
        .unwrap();
    assert_eq!(stdout(&out), "hello from web\nunreachable TimeoutError\n", "{}", String::from_utf8_lossy(&out.stderr));
    web.kill();
    web.wait().unwrap();
    TcpListener::bind(("127.0.0.1", port)).expect("the port went with the sandbox");
    nets.remove("open").unwrap();
}

#[test]
fn a_sandbox_shares_another_ones_network_and_nothing_else() {
    let _serial = common::serial();
    require_root!();
    let Some(image) = common::image("debian-python") else {
        common::skip(module_path!(), "the debian-python test image is missing");
        return;
    };
    let server = "import socket\n\
                  t = socket.socket(); t.bind(('127.0.0.1', 8000)); t.listen()\n\
                  print('ready', flush=True)\n\
                  c, _ = t.accept(); c.sendall(b'from loopback\\n'); c.close()\n";
    let mut first = Sandbox::builder(&image)
        .stdout(isolette::Output::Pipe)
        .wall_time(Duration::from_secs(20))
        .spawn(["python3", "-c", server])
        .unwrap();
    let mut ready = [0u8; 6];
    first.take_stdout().unwrap().read_exact(&mut ready).unwrap();
    let shared = first.network().unwrap();
    let client = "import socket\n\
                  print(socket.create_connection(('127.0.0.1', 8000), timeout=5).recv(100).decode(), end='')\n";
    let out = Sandbox::builder(&image)
        .network(Network::Shared(shared.clone()))
        .wall_time(Duration::from_secs(20))
        .run(["python3", "-c", client])
        .unwrap();
    assert_eq!(stdout(&out), "from loopback\n", "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(first.wait().unwrap().status, Status::Ok);
    // What the other sandbox's network is, it is for both: no ports or rules of its own.
    let err = |b: isolette::SandboxBuilder| match b.run(["true"]) {
        Err(Error::Config(m)) => m,
        other => panic!("not a config error: {other:?}"),
    };
    let on = || Sandbox::builder(&image).network(Network::Shared(shared.clone()));
    assert!(err(on().publish(Publish::tcp([127, 0, 0, 1].into(), 0, 80))).contains("publishes no ports"));
    assert!(err(on().user_namespace(true)).contains("no user namespace"));
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
    require_root!(); // for the test host
    require_slirp!();
    let image = busybox!();
    let internet = Internet::start(3);
    let other = internet.host.listen(internet.addr, 0);
    let other_port = other.local_addr().unwrap().port();
    serve(other, b"other\n");
    // What both servers say (or `unreachable`), then `.`; a published server is served
    // before the sandbox ends.
    let script = |publish: bool| {
        let fetches = format!(
            "{}; {}; echo .",
            fetch(&format!("{} {}", internet.addr, internet.port)),
            fetch(&format!("{} {other_port}", internet.addr))
        );
        if publish { format!("echo served | nc -l -p 8000 & {fetches}; wait") } else { fetches }
    };
    let run = |rules: &[&str], publish: Option<u16>| {
        let mut b = Sandbox::builder(&image).network(Network::Outbound);
        for rule in rules {
            b = b.egress(rule.parse().unwrap());
        }
        if let Some(port) = publish {
            b = b.publish(Publish::tcp([127, 0, 0, 1].into(), port, 8000));
        }
        let running = b.stdout(isolette::Output::Capture).spawn(["/bin/sh", "-c", &script(publish.is_some())]).unwrap();
        let greeting = publish.map(|port| greeting(port, "served\n"));
        let out = running.wait().unwrap();
        (stdout(&out), greeting)
    };
    let (a, p) = (internet.addr, internet.port);
    // Denied: neither server answers.
    let (out, _) = run(&[&format!("deny:{a}/24")], None);
    assert_eq!(out, "unreachable\nunreachable\n.\n");
    // One address and port allowed: only that one; a published port still serves.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (out, served) = run(&[&format!("allow:{a}:{p}")], Some(port));
    assert_eq!((out.as_str(), served.as_deref()), ("internet\nunreachable\n.\n", Some("served\n")));
    // In order, the first match decides: a deny before an allow wins, and an allow before
    // a deny.
    let (out, _) = run(&[&format!("deny:{a}:{p}"), &format!("allow:{a}/24")], None);
    assert_eq!(out, "unreachable\nother\n.\n");
    let (out, _) = run(&[&format!("allow:{a}:{p}"), &format!("deny:{a}/24")], None);
    assert_eq!(out, "internet\nunreachable\n.\n");
    // Published ports without a network: the server serves, and reaches nothing itself.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let running = Sandbox::builder(&image)
        .publish(Publish::tcp([127, 0, 0, 1].into(), port, 8000))
        .spawn(["/bin/sh", "-c", &script(true)])
        .unwrap();
    assert_eq!(greeting(port, "served\n"), "served\n");
    assert_eq!(stdout(&running.wait().unwrap()), "unreachable\nunreachable\n.\n");
    // Rules of the caller's need an outbound network.
    let none = Sandbox::builder(&image).egress(isolette::EgressRule::parse(true, "1.1.1.1").unwrap());
    assert!(matches!(none.run(["true"]), Err(Error::Config(m)) if m.contains("egress")));
}
