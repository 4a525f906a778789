//! The traffic: benign background and the episodes a behaviour sensor should
//! notice, each made by real client programs from inside hosts to outside
//! servers, through the router (and so through the mirror).
//!
//! Every episode is a function that returns when its work is done or its
//! time limit has passed (an error then), and stops every process it
//! started before it returns. Each generator is bounded in count as well:
//! one transfer per curl, one query per lookup, one SSH session, one nmap
//! run over a fixed range with `--max-retries 1`. What each one does:
//!
//! | episode       | from | what                                                         |
//! |---------------|------|--------------------------------------------------------------|
//! | `benign`      | all  | DNS lookups (dig, host), HTTP and HTTPS fetches (curl), one SSH session on :22 |
//! | `upload`      | in1  | `curl -T` of a 4 MiB file to the sink (HTTP PUT)              |
//! | `dns-tunnel`  | in2  | iodine through the resolver to iodined; 128 KiB fetched through the tunnel |
//! | `icmp-tunnel` | in3  | ptunnel-ng to the proxy; 256 KiB fetched from the web server through it |
//! | `ssh-443`     | in2  | SSH to the second sshd on port 443, 256 KiB sent up the session |
//! | `scan`        | in3  | nmap SYN scan of 6 ports over the outside /24                 |

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::Lab;
use super::exec::{Exec, Output, wait_until};
use super::servers::{
    IODINE_PASSWORD, LAB_LIFETIME, REPORT_LEN, TUNNEL_BLOB_LEN, TUNNEL_HTTP_PORT, path_str,
};
use super::topology::{Node, TUNNEL_DOMAIN, TUNNEL_SERVER};

/// Limit of one short client command.
const SHORT: Duration = Duration::from_secs(10);
/// Ports the scan probes.
const SCAN_PORTS: &str = "22,53,80,443,3389,8080";
/// The local port of the ptunnel-ng client.
const PTUNNEL_LOCAL_PORT: u16 = 8000;

/// One run of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Episode {
    /// Ordinary traffic: DNS, web, SSH.
    Benign,
    /// A bulk upload to the outside.
    Upload,
    /// A DNS tunnel (iodine).
    DnsTunnel,
    /// An ICMP tunnel (ptunnel-ng).
    IcmpTunnel,
    /// SSH on port 443.
    SshOn443,
    /// A port scan of the outside subnet (nmap).
    Scan,
}

impl Episode {
    /// Every episode, in the order `all` runs them.
    pub const ALL: [Self; 6] =
        [Self::Benign, Self::Upload, Self::DnsTunnel, Self::IcmpTunnel, Self::SshOn443, Self::Scan];

    /// The name on the command line.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::Benign => "benign",
            Self::Upload => "upload",
            Self::DnsTunnel => "dns-tunnel",
            Self::IcmpTunnel => "icmp-tunnel",
            Self::SshOn443 => "ssh-443",
            Self::Scan => "scan",
        }
    }

    /// What it is, for the banner.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::Benign => "benign traffic (DNS, web, SSH)",
            Self::Upload => "bulk upload (curl -T, 4 MiB)",
            Self::DnsTunnel => "dns tunnel (iodine)",
            Self::IcmpTunnel => "icmp tunnel (ptunnel-ng)",
            Self::SshOn443 => "ssh on port 443",
            Self::Scan => "port scan (nmap)",
        }
    }

    /// `== episode: dns tunnel (iodine) ==`
    #[must_use]
    pub fn banner(self) -> String {
        format!("== episode: {} ==", self.title())
    }

    /// Runs it.
    pub fn run(self, lab: &Lab) -> Result<Outcome> {
        match self {
            Self::Benign => benign_traffic(lab),
            Self::Upload => bulk_upload(lab),
            Self::DnsTunnel => dns_tunnel_iodine(lab),
            Self::IcmpTunnel => icmp_tunnel_ptunnel(lab),
            Self::SshOn443 => ssh_on_port_443(lab),
            Self::Scan => port_scan_nmap(lab),
        }
    }

    /// Parses `all`, `benign`, or a comma-separated list of keys (run in the
    /// order given).
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        match text.trim() {
            "all" => return Ok(Self::ALL.to_vec()),
            "" => bail!("no episodes given; valid: all, or a list of {}", Self::keys()),
            _ => {}
        }
        let mut list = Vec::new();
        for key in text.split(',').map(str::trim) {
            let episode = Self::ALL.into_iter().find(|e| e.key() == key).with_context(|| {
                format!("unknown episode {key:?}; valid: all, or a list of {}", Self::keys())
            })?;
            if !list.contains(&episode) {
                list.push(episode);
            }
        }
        Ok(list)
    }

    fn keys() -> String {
        Self::ALL.map(Self::key).join(", ")
    }
}

/// What an episode did, in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// E.g. `uploaded 4194304 bytes to sink.lab in 0.4 s`.
    pub summary: String,
}

impl Outcome {
    fn new(summary: impl Into<String>) -> Self {
        Self { summary: summary.into() }
    }
}

fn client<S: AsRef<str>>(lab: &Lab, node: Node, argv: &[S]) -> Exec {
    Exec::new(Some(&lab.ns(node)), argv).limit(SHORT)
}

/// Runs a client command; fails, saying what it was for, unless it exits 0.
fn run(what: &str, exec: &Exec) -> Result<Output> {
    exec.run_ok().with_context(|| what.to_owned())
}

/// curl's `-w` fields, split: `%{http_code} %{size_download} %{size_upload} %{time_total}`.
const CURL_WRITE_OUT: &str = "%{http_code} %{size_download} %{size_upload} %{time_total}";

#[derive(Debug, Clone, Copy, Default)]
struct Transfer {
    down: u64,
    up: u64,
    secs: f64,
}

fn curl(lab: &Lab, node: Node, url: &str, extra: &[&str], limit: Duration) -> Result<Transfer> {
    let mut argv = vec!["curl", "-sS", "--fail", "-o", "/dev/null", "-w", CURL_WRITE_OUT];
    argv.extend_from_slice(extra);
    argv.push("--max-time");
    let max = limit.as_secs().saturating_sub(1).max(1).to_string();
    argv.push(&max);
    argv.push(url);
    let out = run(&format!("curl {url} from {}", node.short()), &client(lab, node, &argv).limit(limit))?;
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    let count = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let secs = fields.get(3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(Transfer { down: count(1), up: count(2), secs })
}

/// No user config, no prompts, no host key memory, no waiting on a dead server.
const SSH_OPTIONS: [&str; 12] = [
    "-F",
    "/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=5",
    "-o",
    "LogLevel=ERROR",
];

/// `ssh <options> -i <lab client key> -p <port>`.
fn ssh_args(lab: &Lab, port: u16) -> Result<Vec<String>> {
    let mut argv = vec!["ssh".to_owned()];
    argv.extend(SSH_OPTIONS.map(str::to_owned));
    argv.extend([
        "-i".to_owned(),
        path_str(&lab.materials().ssh_client_key)?,
        "-p".to_owned(),
        port.to_string(),
    ]);
    Ok(argv)
}

fn kib(bytes: u64) -> String {
    format!("{} KiB", bytes / 1024)
}

/// DNS lookups against the resolver, HTTP and HTTPS fetches by name, and an
/// SSH session on port 22 that runs a short command.
pub fn benign_traffic(lab: &Lab) -> Result<Outcome> {
    let resolver = format!("@{}", Node::Dns.ip());
    let dig = ["dig", "+time=2", "+tries=1", "+short", &resolver, "web.lab", "A"];
    let answer = run("dig web.lab from in1", &client(lab, Node::In1, &dig))?;
    if answer.stdout.trim() != Node::Web.ip().to_string() {
        bail!("dig web.lab answered {:?}, not {}", answer.stdout.trim(), Node::Web.ip());
    }
    let dns = Node::Dns.ip().to_string();
    run("host ssh.lab from in2", &client(lab, Node::In2, &["host", "-W", "2", "-t", "A", "ssh.lab", &dns]))?;
    run(
        "host sink.lab from in3",
        &client(lab, Node::In3, &["host", "-W", "2", "-t", "A", "sink.lab", &dns]),
    )?;

    // By name: each fetch also makes the client's own resolver query.
    let page = curl(lab, Node::In1, "http://web.lab/", &[], SHORT)?;
    let cert = path_str(&lab.materials().tls_cert)?;
    let tls = curl(lab, Node::In2, "https://web.lab/", &["--cacert", &cert], SHORT)?;
    let report = format!("http://web.lab{}", lab.materials().report_path);
    let file = curl(lab, Node::In3, &report, &[], SHORT)?;

    let mut ssh = ssh_args(lab, 22)?;
    ssh.extend(["root@ssh.lab".to_owned(), "uname -sr; uptime".to_owned()]);
    run("ssh to ssh.lab:22 from in3", &client(lab, Node::In3, &ssh))?;
    Ok(Outcome::new(format!(
        "3 lookups; fetched {} B over HTTP, {} B over HTTPS, {} over HTTP; 1 SSH session on :22",
        page.down,
        tls.down,
        kib(file.down)
    )))
}

/// A 4 MiB upload from in1 to the sink (`curl -T`, HTTP PUT).
pub fn bulk_upload(lab: &Lab) -> Result<Outcome> {
    let file = path_str(&lab.materials().upload_file)?;
    // No `Expect: 100-continue` round trip: the body follows the headers.
    let t = curl(
        lab,
        Node::In1,
        "http://sink.lab/upload.bin",
        &["-T", &file, "-H", "Expect:"],
        Duration::from_secs(20),
    )?;
    Ok(Outcome::new(format!("uploaded {} bytes to sink.lab in {:.2} s", t.up, t.secs)))
}

/// iodine on in2, through the resolver (`-r`: never straight to iodined),
/// then a 128 KiB fetch from the tunnel's far end.
pub fn dns_tunnel_iodine(lab: &Lab) -> Result<Outcome> {
    let ns = lab.ns(Node::In2);
    let log = lab.materials().log("iodine_client");
    let dns = Node::Dns.ip().to_string();
    // `-m`: a fixed downstream fragment size (under dnsmasq's 1232-byte EDNS
    // limit) instead of iodine's probing, which takes about 9 s.
    let argv = ["iodine", "-f", "-r", "-m", "1100", "-P", IODINE_PASSWORD, &dns, TUNNEL_DOMAIN];
    let mut tunnel = Exec::new(Some(&ns), &argv).limit(LAB_LIFETIME).spawn("iodine client", &log)?;
    let start = Instant::now();
    // dns0 gets its address early in the handshake; packets sent before
    // this line are lost.
    wait_until("the iodine tunnel on in2", Duration::from_secs(20), || {
        tunnel.check_running()?;
        Ok(tunnel.log_text().contains("Connection setup complete"))
    })?;
    let up = start.elapsed();
    let url = format!("http://{TUNNEL_SERVER}:{TUNNEL_HTTP_PORT}{}", lab.materials().tunnel_blob_path);
    let t = curl(lab, Node::In2, &url, &[], Duration::from_secs(30))?;
    tunnel.stop();
    if t.down != TUNNEL_BLOB_LEN {
        bail!("fetched {} bytes through the DNS tunnel, expected {TUNNEL_BLOB_LEN}", t.down);
    }
    Ok(Outcome::new(format!(
        "tunnel up in {:.1} s; fetched {} from {TUNNEL_SERVER} through it in {:.1} s",
        up.as_secs_f64(),
        kib(t.down),
        t.secs
    )))
}

/// ptunnel-ng on in3 to the proxy, forwarding a local port to the web
/// server's HTTP port; then a 256 KiB fetch through it.
pub fn icmp_tunnel_ptunnel(lab: &Lab) -> Result<Outcome> {
    let ns = lab.ns(Node::In3);
    let log = lab.materials().log("ptunnel_client");
    let argv = [
        "ptunnel-ng".to_owned(),
        "-v".into(),
        "1".into(),
        format!("-p{}", Node::Ptunnel.ip()),
        format!("-l{PTUNNEL_LOCAL_PORT}"),
        format!("-r{}", Node::Web.ip()),
        "-R80".into(),
    ];
    let mut tunnel = Exec::new(Some(&ns), &argv).limit(LAB_LIFETIME).spawn("ptunnel-ng client", &log)?;
    let local = format!(":{PTUNNEL_LOCAL_PORT}");
    wait_until("the ptunnel-ng client's local port", Duration::from_secs(10), || {
        tunnel.check_running()?;
        let out = Exec::new(Some(&ns), &["ss", "-Hltn"]).run_ok()?;
        Ok(out.stdout.lines().any(|l| l.split_whitespace().nth(3).is_some_and(|a| a.ends_with(&local))))
    })?;
    let url = format!("http://127.0.0.1:{PTUNNEL_LOCAL_PORT}{}", lab.materials().report_path);
    let t = curl(lab, Node::In3, &url, &[], Duration::from_secs(30))?;
    tunnel.stop();
    if t.down != REPORT_LEN {
        bail!("fetched {} bytes through the ICMP tunnel, expected {REPORT_LEN}", t.down);
    }
    Ok(Outcome::new(format!("fetched {} from web.lab:80 through ICMP in {:.1} s", kib(t.down), t.secs)))
}

/// SSH from in2 to the sshd on port 443, sending 256 KiB up the session.
pub fn ssh_on_port_443(lab: &Lab) -> Result<Outcome> {
    let mut argv = ssh_args(lab, 443)?;
    argv.extend(["root@ssh.lab".to_owned(), "wc -c".to_owned()]);
    let file = lab.materials().www.join(lab.materials().report_path.trim_start_matches('/'));
    let start = Instant::now();
    let out = run("ssh to ssh.lab:443 from in2", &client(lab, Node::In2, &argv).stdin(&file))?;
    let sent = out.stdout.trim();
    if sent != REPORT_LEN.to_string() {
        bail!("the far end of ssh :443 counted {sent:?} bytes, expected {REPORT_LEN}");
    }
    Ok(Outcome::new(format!(
        "sent {} over SSH to ssh.lab:443 in {:.1} s",
        kib(REPORT_LEN),
        start.elapsed().as_secs_f64()
    )))
}

/// An nmap SYN scan of the outside /24 from in3: host discovery, then six
/// ports per live host; bounded by retries, RTT and host timeouts.
pub fn port_scan_nmap(lab: &Lab) -> Result<Outcome> {
    let target = format!("{}/24", Node::Web.ip());
    let argv = [
        "nmap",
        "-n",
        "-T4",
        "--max-retries",
        "1",
        "--max-rtt-timeout",
        "200ms",
        "--host-timeout",
        "10s",
        "-p",
        SCAN_PORTS,
        &target,
    ];
    let out = run("nmap from in3", &client(lab, Node::In3, &argv).limit(Duration::from_secs(40)))?;
    let done = out.stdout.lines().find(|l| l.starts_with("Nmap done")).unwrap_or("nmap finished");
    let open = out.stdout.lines().filter(|l| l.contains("/tcp") && l.contains(" open ")).count();
    Ok(Outcome::new(format!("{done}; {open} open ports")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_and_lists_in_the_order_given() -> Result<()> {
        assert_eq!(Episode::parse_list("all")?, Episode::ALL.to_vec());
        assert_eq!(Episode::parse_list("benign")?, vec![Episode::Benign]);
        assert_eq!(
            Episode::parse_list("scan, upload,scan")?,
            vec![Episode::Scan, Episode::Upload],
            "duplicates run once"
        );
        Ok(())
    }

    #[test]
    fn rejects_an_unknown_episode_naming_the_valid_ones() {
        let err = Episode::parse_list("upload,dns").expect_err("dns is not an episode").to_string();
        assert!(err.contains("\"dns\"") && err.contains("dns-tunnel, icmp-tunnel"), "{err}");
    }

    #[test]
    fn banners_name_the_tool() {
        assert_eq!(Episode::DnsTunnel.banner(), "== episode: dns tunnel (iodine) ==");
    }
}
