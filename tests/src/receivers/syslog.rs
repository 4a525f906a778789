//! rsyslog and syslog-ng receiving RFC 5424 over TCP (octet counting) or TLS, writing every
//! message as received to a file; and a test CA made with openssl at test time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{Process, find_program, wait_for_port, workspace};

/// A syslog receiver and the file it writes.
#[derive(Debug)]
pub struct Syslog {
    /// Its port.
    pub port: u16,
    /// What it received, one message per line.
    pub out: PathBuf,
    /// The server process.
    pub process: Process,
}

impl Syslog {
    /// What the receiver wrote so far.
    pub fn received(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, made with openssl.
#[derive(Debug)]
pub struct TestCa {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Server certificate (PEM).
    pub cert: PathBuf,
    /// Server key (PEM).
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("running openssl")?;
    if !out.status.success() {
        bail!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl TestCa {
    /// Generates the CA and server certificate in `dir`; `None` when openssl is missing.
    pub fn generate(dir: &Path) -> Result<Option<Self>> {
        if find_program("openssl", &[]).is_none() {
            return Ok(None);
        }
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )?;
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=nbad test CA",
            ],
            dir,
        )?;
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            dir,
        )?;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
            dir,
        )?;
        Ok(Some(Self { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }))
    }
}

/// Starts rsyslogd listening on TCP (with `tls`: TLS, RFC 5425); `None` when it (or, for TLS,
/// its gnutls driver) is not installed.
pub fn rsyslog(dir: &Path, port: u16, tls: Option<&TestCa>) -> Result<Option<Syslog>> {
    let Some(bin) = find_program("rsyslogd", &[]) else { return Ok(None) };
    let driver = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so");
    if tls.is_some() && !driver.exists() && !Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists() {
        return Ok(None);
    }
    let work = dir.join(format!("rsyslog-{port}"));
    std::fs::create_dir_all(&work)?;
    let out = work.join("received.log");
    let (global, module) = match tls {
        Some(ca) => (
            format!(
                "global(workDirectory=\"{w}\" DefaultNetstreamDriverCAFile=\"{ca}\" DefaultNetstreamDriverCertFile=\"{cert}\" DefaultNetstreamDriverKeyFile=\"{key}\")",
                w = work.display(),
                ca = ca.ca.display(),
                cert = ca.cert.display(),
                key = ca.key.display()
            ),
            "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")",
        ),
        None => (format!("global(workDirectory=\"{}\")", work.display()), "module(load=\"imtcp\")"),
    };
    let conf = format!(
        "{global}\n{module}\ninput(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
         template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
         action(type=\"omfile\" file=\"{}\" template=\"raw\")\n",
        out.display()
    );
    let conf_path = work.join("rsyslog.conf");
    std::fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(bin);
    cmd.arg("-n").arg("-f").arg(&conf_path).arg("-i").arg(work.join("pid"));
    let process = Process::spawn("rsyslogd", &mut cmd, &work.join("rsyslogd.log"))?;
    wait_for_port(port, Duration::from_secs(10)).with_context(|| process.log())?;
    Ok(Some(Syslog { port, out, process }))
}

/// Starts syslog-ng with a `syslog()` source (RFC 5424, octet counting) on TCP; `None` when it
/// is neither installed nor unpacked under `target/receivers/syslog-ng`.
pub fn syslog_ng(dir: &Path, port: u16) -> Result<Option<Syslog>> {
    let unpacked = workspace().join("target/receivers/syslog-ng");
    let Some(bin) = find_program("syslog-ng", &[unpacked.join("usr/sbin/syslog-ng")]) else {
        return Ok(None);
    };
    let work = dir.join(format!("syslog-ng-{port}"));
    std::fs::create_dir_all(&work)?;
    let out = work.join("received.log");
    let conf = format!(
        "@version: 3.38\noptions {{ stats_freq(0); }};\n\
         source s_net {{ syslog(ip(\"127.0.0.1\") port({port}) transport(\"tcp\") max-connections(100)); }};\n\
         destination d_file {{ file(\"{}\" template(\"${{SDATA}} ${{MSG}}\\n\")); }};\n\
         log {{ source(s_net); destination(d_file); }};\n",
        out.display()
    );
    let conf_path = work.join("syslog-ng.conf");
    std::fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(&bin);
    cmd.arg("-F").arg("--no-caps").arg("-f").arg(&conf_path);
    for (flag, name) in [("-R", "persist"), ("-p", "pid"), ("-c", "ctl")] {
        cmd.arg(flag).arg(work.join(name));
    }
    if bin.starts_with(&unpacked) {
        let lib = unpacked.join("usr/lib/syslog-ng");
        cmd.arg(format!("--module-path={}", lib.join("3.38").display())).env("LD_LIBRARY_PATH", lib);
    }
    let process = Process::spawn("syslog-ng", &mut cmd, &work.join("syslog-ng.log"))?;
    wait_for_port(port, Duration::from_secs(10)).with_context(|| process.log())?;
    Ok(Some(Syslog { port, out, process }))
}
