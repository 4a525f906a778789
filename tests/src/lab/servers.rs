//! The outside servers, and the files and keys they and the clients use.
//!
//! Everything is generated at lab start in the lab's scratch folder: the
//! web content, the upload file, a self-signed certificate for the HTTPS
//! server, an SSH host key and client key. Every server is a stock program
//! from a Debian package, started in its own namespace under `timeout` (see
//! [`super::exec`]); only the upload sink is a few lines of Python on
//! the standard library's HTTP server, because no packaged server takes a
//! PUT without configuration.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::exec::{Daemon, Exec, wait_until};
use super::preflight::find_program;
use super::topology::{Names, Node, PREFIX_LEN, TUNNEL_DOMAIN, TUNNEL_SERVER};

/// Longest any lab process lives: a bound that holds even if the process
/// that started the lab dies without tearing it down.
pub const LAB_LIFETIME: Duration = Duration::from_secs(600);
/// Longest a server may take to start listening.
const READY_LIMIT: Duration = Duration::from_secs(10);
/// Size of the file uploaded to the sink.
pub const UPLOAD_LEN: u64 = 4 << 20;
/// Size of the file on the web server (also fetched through the ICMP tunnel).
pub const REPORT_LEN: u64 = 256 << 10;
/// Size of the file fetched through the DNS tunnel.
pub const TUNNEL_BLOB_LEN: u64 = 128 << 10;
/// The port of the HTTP server at the far end of the DNS tunnel.
pub const TUNNEL_HTTP_PORT: u16 = 8000;
/// iodine's shared secret (a lab value, not a secret).
pub const IODINE_PASSWORD: &str = "nbad-lab";

/// The generated files, by role.
#[derive(Debug, Clone)]
pub struct Materials {
    /// The scratch folder everything lives in.
    pub dir: PathBuf,
    /// The web server's document root.
    pub www: PathBuf,
    /// The URL path of the 256 KiB file on the web server.
    pub report_path: &'static str,
    /// The file the upload episode sends.
    pub upload_file: PathBuf,
    /// The DNS tunnel's far end's document root.
    pub tunnel_www: PathBuf,
    /// The URL path of the file fetched through the DNS tunnel.
    pub tunnel_blob_path: &'static str,
    /// The HTTPS server's certificate (clients trust it with `--cacert`).
    pub tls_cert: PathBuf,
    /// The HTTPS server's key.
    pub tls_key: PathBuf,
    /// The SSH client's private key.
    pub ssh_client_key: PathBuf,
    /// The SSH server's host key.
    pub ssh_host_key: PathBuf,
    /// The authorized_keys file naming the client key.
    pub ssh_authorized_keys: PathBuf,
    /// The upload sink's script.
    pub sink_script: PathBuf,
    /// Server logs.
    pub logs: PathBuf,
}

impl Materials {
    /// Generates everything under `dir`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let sub = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
            Ok(path)
        };
        let (www, tunnel_www, tls, ssh, logs) =
            (sub("www")?, sub("tunnel")?, sub("tls")?, sub("ssh")?, sub("logs")?);
        let m = Self {
            dir: dir.to_owned(),
            report_path: "/files/report.bin",
            upload_file: dir.join("upload.bin"),
            tunnel_blob_path: "/tunnel.bin",
            tls_cert: tls.join("web.crt"),
            tls_key: tls.join("web.key"),
            ssh_client_key: ssh.join("client_ed25519"),
            ssh_host_key: ssh.join("host_ed25519"),
            ssh_authorized_keys: ssh.join("authorized_keys"),
            sink_script: dir.join("sink.py"),
            www,
            tunnel_www,
            logs,
        };
        write(&m.www.join("index.html"), INDEX_HTML.as_bytes())?;
        std::fs::create_dir_all(m.www.join("files")).context("creating the web files folder")?;
        write(&m.www.join(m.report_path.trim_start_matches('/')), &noise(REPORT_LEN, 1))?;
        write(&m.tunnel_www.join(m.tunnel_blob_path.trim_start_matches('/')), &noise(TUNNEL_BLOB_LEN, 2))?;
        write(&m.upload_file, &noise(UPLOAD_LEN, 3))?;
        write(&m.sink_script, SINK_PY.as_bytes())?;

        let web = Node::Web.ip();
        Exec::new(
            None,
            &[
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=web.lab",
                "-addext",
                &format!("subjectAltName=DNS:web.lab,IP:{web}"),
                "-keyout",
                &path_str(&m.tls_key)?,
                "-out",
                &path_str(&m.tls_cert)?,
            ],
        )
        .run_ok()
        .context("generating the HTTPS server's certificate")?;
        for (key, comment) in [(&m.ssh_host_key, "nbad-lab-host"), (&m.ssh_client_key, "nbad-lab-client")] {
            Exec::new(
                None,
                &["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &path_str(key)?],
            )
            .run_ok()
            .context("generating an SSH key")?;
        }
        let public =
            std::fs::read(m.ssh_client_key.with_extension("pub")).context("reading the client key")?;
        write(&m.ssh_authorized_keys, &public)?;
        Ok(m)
    }

    /// The log file of a lab process.
    #[must_use]
    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// A path as a command-line argument.
pub fn path_str(path: &Path) -> Result<String> {
    path.to_str().map(str::to_owned).with_context(|| format!("{} is not UTF-8", path.display()))
}

/// `len` bytes that do not compress (xorshift64), so that no layer of any
/// protocol makes an upload smaller than the file.
fn noise(len: u64, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    while (out.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(usize::try_from(len).unwrap_or(0));
    out
}

const INDEX_HTML: &str = "<!doctype html>\n<title>lab web server</title>\n\
    <p>nbad-sensor lab: this page is served from the outside network.</p>\n";

/// The upload sink: takes PUT (and POST) bodies, counts them, drops them.
const SINK_PY: &str = r#"import http.server, sys

class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_PUT(self):
        left = int(self.headers.get("Content-Length", "0"))
        got = 0
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            got += len(chunk)
            left -= len(chunk)
        body = ("stored %d bytes\n" % got).encode()
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT

    def log_message(self, fmt, *args):
        sys.stderr.write("sink: " + (fmt % args) + "\n")

http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Sink).serve_forever()
"#;

/// An sshd configuration for one port: key-only root login, the lab's keys,
/// no PAM, no pid file.
fn sshd_config(m: &Materials, port: u16) -> Result<String> {
    let mut text = String::new();
    let _ = writeln!(text, "Port {port}");
    let _ = writeln!(text, "ListenAddress {}", Node::Ssh.ip());
    let _ = writeln!(text, "HostKey {}", path_str(&m.ssh_host_key)?);
    let _ = writeln!(text, "AuthorizedKeysFile {}", path_str(&m.ssh_authorized_keys)?);
    for line in [
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        // The scratch folder is not laid out like a home directory.
        "StrictModes no",
        "PidFile none",
        "LogLevel ERROR",
    ] {
        let _ = writeln!(text, "{line}");
    }
    Ok(text)
}

/// What one server listens on, for the readiness check.
#[derive(Debug, Clone, Copy)]
enum Listen {
    Tcp(Ipv4Addr, u16),
    Udp(Ipv4Addr, u16),
    /// Raw ICMP: nothing to see in `ss`; it only has to stay up.
    Icmp,
}

struct Server {
    name: &'static str,
    node: Node,
    argv: Vec<String>,
    listen: Listen,
}

fn servers(m: &Materials) -> Result<Vec<Server>> {
    let python = find_program("python3").context("python3 is not installed")?;
    let python = path_str(&python)?;
    let sshd = path_str(&find_program("sshd").context("sshd is not installed (package openssh-server)")?)?;
    let (web, dns, ssh, iodine, sink) =
        (Node::Web.ip(), Node::Dns.ip(), Node::Ssh.ip(), Node::Iodine.ip(), Node::Sink.ip());
    let mut dnsmasq = vec![
        "dnsmasq".to_owned(),
        "--keep-in-foreground".into(),
        "--log-facility=-".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--no-poll".into(),
        "--bind-interfaces".into(),
        format!("--listen-address={dns}"),
        format!("--pid-file={}", path_str(&m.dir.join("dnsmasq.pid"))?),
        // Answers for the lab zone itself (NODATA for AAAA, never REFUSED)…
        "--local=/lab/".into(),
        // …and hands the tunnel zone to iodined, as a real resolver would.
        format!("--server=/{TUNNEL_DOMAIN}/{iodine}"),
    ];
    for node in Node::OUTSIDE {
        if let Some(name) = node.dns_name() {
            dnsmasq.push(format!("--address=/{name}/{}", node.ip()));
        }
    }
    let mut list = vec![
        Server {
            name: "web (http.server)",
            node: Node::Web,
            argv: strings(&[
                &python,
                "-m",
                "http.server",
                "80",
                "--bind",
                &web.to_string(),
                "--directory",
                &path_str(&m.www)?,
            ]),
            listen: Listen::Tcp(web, 80),
        },
        Server {
            name: "web (openssl s_server)",
            node: Node::Web,
            argv: strings(&[
                "openssl",
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &format!("{web}:443"),
                "-cert",
                &path_str(&m.tls_cert)?,
                "-key",
                &path_str(&m.tls_key)?,
            ]),
            listen: Listen::Tcp(web, 443),
        },
        Server { name: "resolver (dnsmasq)", node: Node::Dns, argv: dnsmasq, listen: Listen::Udp(dns, 53) },
        Server {
            name: "iodined",
            node: Node::Iodine,
            argv: strings(&[
                "iodined",
                "-f",
                "-c",
                "-P",
                IODINE_PASSWORD,
                "-l",
                &iodine.to_string(),
                "-p",
                "53",
                &format!("{TUNNEL_SERVER}/{PREFIX_LEN}"),
                TUNNEL_DOMAIN,
            ]),
            listen: Listen::Udp(iodine, 53),
        },
        Server {
            name: "tunnel far end (http.server)",
            node: Node::Iodine,
            argv: strings(&[
                &python,
                "-m",
                "http.server",
                &TUNNEL_HTTP_PORT.to_string(),
                "--bind",
                "0.0.0.0",
                "--directory",
                &path_str(&m.tunnel_www)?,
            ]),
            listen: Listen::Tcp(Ipv4Addr::UNSPECIFIED, TUNNEL_HTTP_PORT),
        },
        Server {
            name: "ptunnel-ng proxy",
            node: Node::Ptunnel,
            // Restricted to forwarding to the web server's HTTP port.
            argv: strings(&["ptunnel-ng", "-v", "1", &format!("-r{web}"), "-R80"]),
            listen: Listen::Icmp,
        },
        Server {
            name: "upload sink",
            node: Node::Sink,
            argv: strings(&[&python, &path_str(&m.sink_script)?, &sink.to_string(), "80"]),
            listen: Listen::Tcp(sink, 80),
        },
    ];
    for port in [22, 443] {
        let config = m.dir.join(format!("sshd_{port}.conf"));
        write(&config, sshd_config(m, port)?.as_bytes())?;
        list.push(Server {
            name: if port == 22 { "sshd :22" } else { "sshd :443" },
            node: Node::Ssh,
            argv: strings(&[&sshd, "-D", "-e", "-f", &path_str(&config)?]),
            listen: Listen::Tcp(ssh, port),
        });
    }
    Ok(list)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|&a| a.to_owned()).collect()
}

/// Starts every server and waits until each listens. On error the servers
/// already started are stopped (dropped).
pub fn start(names: &Names, m: &Materials) -> Result<Vec<Daemon>> {
    // sshd insists on its privilege-separation folder, which the
    // openssh-server service would create.
    std::fs::create_dir_all("/run/sshd").context("creating /run/sshd for sshd")?;
    let list = servers(m)?;
    let mut daemons = Vec::with_capacity(list.len());
    for server in &list {
        let log = m.log(&server.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        let daemon = Exec::new(Some(&names.ns(server.node)), &server.argv)
            .limit(LAB_LIFETIME)
            .spawn(server.name, &log)?;
        daemons.push(daemon);
    }
    for (server, daemon) in list.iter().zip(daemons.iter_mut()) {
        let ns = names.ns(server.node);
        let what = format!("{} in {ns}", server.name);
        wait_until(&what, READY_LIMIT, || {
            daemon.check_running()?;
            listening(&ns, server.listen)
        })?;
    }
    Ok(daemons)
}

/// True when something in `ns` listens as `listen` says.
fn listening(ns: &str, listen: Listen) -> Result<bool> {
    let (flag, addr, port) = match listen {
        Listen::Tcp(addr, port) => ("-Hltn", addr, port),
        Listen::Udp(addr, port) => ("-Hlun", addr, port),
        Listen::Icmp => return Ok(true),
    };
    let out = Exec::new(Some(ns), &["ss", flag]).run_ok()?;
    let local = if addr.is_unspecified() { format!("*:{port}") } else { format!("{addr}:{port}") };
    let alt = format!("0.0.0.0:{port}");
    Ok(out.stdout.lines().any(|l| {
        l.split_whitespace().nth(3).is_some_and(|a| a == local || (addr.is_unspecified() && a == alt))
    }))
}
