//! Every byte arrives, exactly once, through every kind of network a sandbox can have:
//! outbound (to a test host in a network namespace of the test's own), published TCP and
//! UDP ports, and named networks (between members, to a published port of a member, and out
//! from a member); from root and from an unprivileged caller; 1 B to 8 MiB, with a
//! half-close from either side (`core/tests/net/transfer.py` says how). 1,050 transfers in
//! all, each checked by byte count and sha256: none may be corrupted or hang.
//! `bench/network.sh` runs more of them and times them.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::require_root;
use isolette::{Image, Network, Output, Publish, Sandbox, SandboxBuilder};

/// The directory holding `transfer.py`, readable by every user (a sandbox of an
/// unprivileged caller binds it too).
fn scripts() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.path().join("transfer.py");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/net/transfer.py"), &script).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// The totals line of `transfer.py`, checked: `count` transfers, none bad or hung.
fn check(what: &str, count: u32, out: &[u8], err: &[u8]) -> (u64, f64) {
    let text = String::from_utf8_lossy(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("transfers "))
        .unwrap_or_else(|| panic!("{what}: no totals in {text:?}; stderr: {}", String::from_utf8_lossy(err)));
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        (w[1], w[3], w[5]),
        (count.to_string().as_str(), "0", "0"),
        "{what}: {line}\n{}",
        String::from_utf8_lossy(err)
    );
    println!("{what}: {line}");
    (w[7].parse().unwrap(), w[9].parse().unwrap())
}

/// `python3 transfer.py ARGS` on the host.
fn host_client(scripts: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new("python3").arg(scripts.join("transfer.py")).args(args).output().unwrap()
}

fn python() -> Option<Image> {
    let image = common::image("debian-python");
    if image.is_none() {
        common::skip(module_path!(), "the debian-python test image is missing");
    }
    image
}

fn in_sandbox(image: &Image, scripts: &std::path::Path) -> SandboxBuilder {
    Sandbox::builder(image).mount_ro(scripts, "/t").wall_time(Duration::from_secs(300)).memory(512 << 20)
}

/// A sandbox serving `transfer.py serve-tcp|serve-udp` on port 8000, published at `publish`;
/// returns once it serves.
fn sandbox_server(builder: SandboxBuilder, udp: bool) -> isolette::Running {
    let mode = if udp { "serve-udp" } else { "serve-tcp" };
    let mut running =
        builder.stdout(Output::Pipe).spawn(["python3", "/t/transfer.py", mode, "0.0.0.0", "8000"]).unwrap();
    let mut ready = String::new();
    BufReader::new(running.take_stdout().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready, "ready\n");
    running
}

#[test]
fn every_byte_arrives_through_every_network_from_root() {
    let _serial = common::serial();
    require_root!(); // for the test host and named networks
    let Some(image) = python() else { return };
    let (_keep, scripts) = scripts();
    let mut host = common::TestHost::start(5);
    host.serve_transfers(false, 7000);
    let dest = host.addr.to_string();

    // Outbound: the sandbox is the client.
    let out = in_sandbox(&image, &scripts)
        .network(Network::Outbound)
        .run(["python3", "/t/transfer.py", "tcp", &dest, "7000", "150", "1"])
        .unwrap();
    check("outbound, root", 150, &out.stdout, &out.stderr);

    // Published TCP: the host is the client.
    let server =
        sandbox_server(in_sandbox(&image, &scripts).publish(Publish::tcp([127, 0, 0, 1].into(), 0, 8000)), false);
    let port = server.ports()[0].host_port.to_string();
    let out = host_client(&scripts, &["tcp", "127.0.0.1", &port, "150", "2"]);
    check("published tcp, root", 150, &out.stdout, &out.stderr);
    server.kill();
    server.wait().unwrap();

    // Published UDP, the host port another than the sandbox's.
    let free = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = sandbox_server(
        in_sandbox(&image, &scripts).network(Network::Outbound).publish(Publish::udp(
            [127, 0, 0, 1].into(),
            free,
            8000,
        )),
        true,
    );
    let out = host_client(&scripts, &["udp", "127.0.0.1", &free.to_string(), "150", "3"]);
    check("published udp, root", 150, &out.stdout, &out.stderr);
    server.kill();
    server.wait().unwrap();

    // A named network: one member serves, and publishes its port; another is the client,
    // and reaches out too.
    let dir = tempfile::tempdir().unwrap();
    let nets = isolette::Networks::open(dir.path().join("networks")).unwrap();
    nets.create("bytes", None, false).unwrap();
    let on = || in_sandbox(&image, &scripts).network(Network::Named(nets.network("bytes").unwrap()));
    let server = sandbox_server(on().hostname("srv").publish(Publish::tcp([127, 0, 0, 1].into(), 0, 8000)), false);
    let out = on().hostname("cli").run(["python3", "/t/transfer.py", "tcp", "srv", "8000", "150", "4"]).unwrap();
    check("named network, root", 150, &out.stdout, &out.stderr);
    let port = server.ports()[0].host_port.to_string();
    let out = host_client(&scripts, &["tcp", "127.0.0.1", &port, "100", "7"]);
    check("named network, published tcp, root", 100, &out.stdout, &out.stderr);
    let out = on().hostname("out").run(["python3", "/t/transfer.py", "tcp", &dest, "7000", "100", "8"]).unwrap();
    check("named network, outbound, root", 100, &out.stdout, &out.stderr);
    server.kill();
    server.wait().unwrap();
    nets.remove("bytes").unwrap();
}

#[test]
fn every_byte_arrives_for_an_unprivileged_caller() {
    let _serial = common::serial();
    require_root!(); // to become an unprivileged user, and for the test host
    let Some(image) = python() else { return };
    let cli = common::cli!();
    if !isolette::HostReport::probe().user_namespaces {
        common::skip(module_path!(), "user namespaces are disabled on this host");
        return;
    }
    let (_keep, scripts) = scripts();
    let mut host = common::TestHost::start(6);
    host.serve_transfers(false, 7000);
    let root = image.layers()[0].to_str().unwrap().to_string();
    let bind = format!("{}:/t", scripts.display());
    // As user 65534, with a /dev/net/tun of mode 0666 in a mount namespace of its own (the
    // host's may be 0600; see network.rs).
    let isolette = || {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"]);
        cmd.arg(
            "mount -t tmpfs -o mode=0755 tmpfs /dev/net && mknod -m 0666 /dev/net/tun c 10 200 && \
             exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$@\"",
        );
        cmd.args(["sh", cli, "run", "--image", &root, "--mount", &bind, "--wall-time", "300s"]);
        cmd
    };
    let out = isolette()
        .args(["--network", "outbound", "--", "python3", "/t/transfer.py", "tcp", &host.addr.to_string(), "7000"])
        .args(["100", "5"])
        .output()
        .unwrap();
    check("outbound, unprivileged", 100, &out.stdout, &out.stderr);
    for (udp, count) in [(false, 100), (true, 50)] {
        let port = if udp {
            UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        } else {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        };
        let spec = format!("127.0.0.1:{port}:8000{}", if udp { "/udp" } else { "" });
        let mut server = isolette()
            .args(["-p", &spec, "--", "python3", "/t/transfer.py", if udp { "serve-udp" } else { "serve-tcp" }])
            .args(["0.0.0.0", "8000"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(server.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready, "ready\n");
        let out = host_client(
            &scripts,
            &[if udp { "udp" } else { "tcp" }, "127.0.0.1", &port.to_string(), &count.to_string(), "6", "quit"],
        );
        check(
            if udp { "published udp, unprivileged" } else { "published tcp, unprivileged" },
            count,
            &out.stdout,
            &out.stderr,
        );
        // The server exits when told (`quit`), and the CLI with it.
        assert!(server.wait().unwrap().success());
    }
}
