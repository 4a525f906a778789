//! `[console]`: where the local web console listens and how it authenticates, raw and
//! validated.
//!
//! Off unless `listen` is set. A bare port binds the loopback address; any other address must
//! be written out, and then TLS is required (a token must not cross a network in the clear).
//! Either a token file or TLS client certificates (`tls_client_ca`) must guard it. Files are
//! only named here; [`super::auth`] reads them when the console starts, so `check-config`
//! works on a machine without them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ConfigError;

/// Alerts the console remembers by default.
pub const DEFAULT_MAX_ALERTS: i64 = 2_000;
const MAX_ALERTS_LIMIT: i64 = 100_000;

/// `[console]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawConsole {
    /// `""` = off; `"PORT"` = loopback; `"ADDRESS:PORT"`.
    pub listen: String,
    /// File holding the bearer token (`""`: none).
    pub token_file: String,
    /// Server certificate chain, PEM (`""`: plain HTTP).
    pub tls_cert: String,
    /// Server private key, PEM.
    pub tls_key: String,
    /// CA whose client certificates are accepted, PEM (`""`: no client certificates).
    pub tls_client_ca: String,
    /// Recent alerts and incident records kept for the pages.
    pub max_alerts: i64,
}

impl Default for RawConsole {
    fn default() -> Self {
        Self {
            listen: String::new(),
            token_file: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_client_ca: String::new(),
            max_alerts: DEFAULT_MAX_ALERTS,
        }
    }
}

/// TLS for the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Server certificate chain, PEM.
    pub cert: PathBuf,
    /// Server private key, PEM.
    pub key: PathBuf,
    /// Client certificates signed by this CA are required and authenticate (`None`: the token
    /// authenticates).
    pub client_ca: Option<PathBuf>,
}

/// `[console]`, validated: `None` in [`crate::config::Config`] when off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The bearer token's file.
    pub token_file: Option<PathBuf>,
    /// TLS, when configured.
    pub tls: Option<TlsSettings>,
    /// Recent alerts and incident records kept for the pages.
    pub max_alerts: usize,
}

impl ConsoleSettings {
    /// The console's address as a browser would open it.
    #[must_use]
    pub fn url(&self, addr: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{addr}/")
    }

    /// Writes the effective `[console]` table, every key shown (off: the defaults).
    pub(crate) fn write_effective(this: Option<&Self>, f: &mut impl std::fmt::Write) -> std::fmt::Result {
        use crate::config::toml_string;
        let path = |p: Option<&PathBuf>| toml_string(&p.map(|p| p.display().to_string()).unwrap_or_default());
        let tls = this.and_then(|s| s.tls.as_ref());
        writeln!(f, "\n[console]")?;
        writeln!(f, "listen = {}", toml_string(&this.map(|s| s.listen.to_string()).unwrap_or_default()))?;
        writeln!(f, "token_file = {}", path(this.and_then(|s| s.token_file.as_ref())))?;
        writeln!(f, "tls_cert = {}", path(tls.map(|t| &t.cert)))?;
        writeln!(f, "tls_key = {}", path(tls.map(|t| &t.key)))?;
        writeln!(f, "tls_client_ca = {}", path(tls.and_then(|t| t.client_ca.as_ref())))?;
        let max = this.map_or(DEFAULT_MAX_ALERTS, |s| s.max_alerts as i64);
        writeln!(f, "max_alerts = {max}")
    }
}

/// Validates `[console]`; errors name the key, the value and what is valid.
pub(crate) fn validate(raw: RawConsole, origin: &Path) -> Result<Option<ConsoleSettings>, ConfigError> {
    let invalid = |key: &str, value: String, expected: &str| ConfigError::Invalid {
        path: origin.to_path_buf(),
        key: format!("console.{key}"),
        value,
        expected: expected.to_owned(),
    };
    let quoted = |s: &str| crate::config::toml_string(s);
    if raw.listen.is_empty() {
        return Ok(None);
    }
    let listen = parse_listen(&raw.listen).ok_or_else(|| {
        invalid(
            "listen",
            quoted(&raw.listen),
            "\"\" (off), a port (bound to 127.0.0.1, e.g. \"8480\"), or an address and port, \
             e.g. \"127.0.0.1:8480\" or \"[::1]:8480\"",
        )
    })?;
    let file = |key: &str, value: &str| -> Result<Option<PathBuf>, ConfigError> {
        if value.is_empty() {
            Ok(None)
        } else if value.contains('\0') {
            Err(invalid(key, quoted(value), "a file path without NUL characters, or \"\""))
        } else {
            Ok(Some(PathBuf::from(value)))
        }
    };
    let token_file = file("token_file", &raw.token_file)?;
    let cert = file("tls_cert", &raw.tls_cert)?;
    let key = file("tls_key", &raw.tls_key)?;
    let client_ca = file("tls_client_ca", &raw.tls_client_ca)?;
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(TlsSettings { cert, key, client_ca }),
        (None, None) if client_ca.is_some() => {
            return Err(invalid(
                "tls_cert",
                "\"\"".into(),
                "the server certificate's PEM file: client certificates (console.tls_client_ca) need TLS",
            ));
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid("tls_key", "\"\"".into(), "the private key's PEM file of console.tls_cert"));
        }
        (None, Some(_)) => {
            return Err(invalid("tls_cert", "\"\"".into(), "the certificate's PEM file of console.tls_key"));
        }
    };
    if token_file.is_none() && tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
        return Err(invalid(
            "token_file",
            "\"\"".into(),
            "a file holding the console's token (mode 0600 or 0640), or TLS client \
             certificates (console.tls_cert, console.tls_key and console.tls_client_ca): \
             the console never runs unauthenticated",
        ));
    }
    if !listen.ip().is_loopback() && tls.is_none() {
        return Err(invalid(
            "listen",
            quoted(&raw.listen),
            "a loopback address (or a bare port) unless console.tls_cert and console.tls_key are \
             set: the token must not cross a network in the clear",
        ));
    }
    let max_alerts = usize::try_from(raw.max_alerts)
        .ok()
        .filter(|n| (1..=MAX_ALERTS_LIMIT as usize).contains(n))
        .ok_or_else(|| {
            invalid("max_alerts", raw.max_alerts.to_string(), "an integer from 1 to 100000 (alerts)")
        })?;
    Ok(Some(ConsoleSettings { listen, token_file, tls, max_alerts }))
}

/// A bare port is the loopback address's; anything else is a socket address.
fn parse_listen(text: &str) -> Option<SocketAddr> {
    if let Ok(port) = text.parse::<u16>() {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse().ok()
}
