//! The port registry: which protocols a (port, transport) is registered for,
//! in the names [`super::App::name`] gives.
//!
//! Built at startup from the system's IANA-derived services database
//! (`/etc/services`, Debian's netbase, read at run time and never copied into
//! this repository: its list is GPL-2), whose service names are mapped to the
//! identifier names ([`protocols_of_service`]: `ms-wbt-server` → rdp,
//! `microsoft-ds` → smb, `imaps` → tls, ...). A service name the identifiers
//! have no name for (`sunrpc`, `nntp`, ...) is kept as the port's service
//! label but registers no protocol, so a port is "registered for something"
//! only in the identifiers' vocabulary.
//!
//! On top of that comes a short [`SUPPLEMENT`] of de-facto ports that IANA does
//! not list, or lists for something else, but that the port rules need; each
//! entry says why. Where the supplement and the file name the same port, both
//! lists count.
//!
//! When the services file is missing or unreadable the registry is built from
//! [`BUILTIN`], a minimal table of the well-known ports the rules depend on,
//! and [`Registry::load`] returns a [`RegistryWarning`] for the caller to log:
//! library code does not print.
//!
//! The process-wide registry ([`global`]) is loaded once, from the path given
//! to [`init_global`] (the configuration's) or from [`DEFAULT_SERVICES`] on
//! first use.
//!
//! Lookups are a binary search in a sorted table of a few hundred entries.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::Transport;

/// The services database read when none is configured.
pub const DEFAULT_SERVICES: &str = "/etc/services";
/// Lines of a services file read at most.
pub const MAX_LINES: usize = 100_000;

/// Why the registry was built without the services file, or without all of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryWarning {
    /// The file could not be read; the built-in table is used.
    #[error("services database {path} unreadable ({reason}); using the built-in port table")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
    /// The file had no usable entry; the built-in table is used.
    #[error("services database {path} has no service entry; using the built-in port table")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// A port's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    port: u16,
    tcp: bool,
    /// The service name (IANA's, or the supplement's label).
    service: Box<str>,
    /// The identifier names the port is registered for.
    protocols: Vec<&'static str>,
}

/// Ports and the protocols registered on them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registry {
    /// Sorted by (port, tcp); one entry per (port, transport).
    entries: Vec<Entry>,
}

/// De-facto ports the rules need: (port, transports, label, protocols, why).
pub const SUPPLEMENT: &[(u16, &str, &str, &[&str], &str)] = &[
    (27017, "tcp", "mongodb", &["mongodb"], "MongoDB's default port; IANA lists it for nothing"),
    (1883, "tcp", "mqtt", &["mqtt"], "MQTT's IANA port, missing from netbase"),
    (8883, "tcp", "secure-mqtt", &["tls"], "MQTT over TLS, missing from netbase"),
    (51820, "udp", "wireguard", &["wireguard"], "WireGuard's conventional port; not registered"),
    (6881, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent's customary range 6881-6889 (first port)"),
    (6882, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range"),
    (6883, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range"),
    (6884, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range"),
    (6885, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range"),
    (6886, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range"),
    (6887, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range"),
    (6888, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range"),
    (6889, "tcp udp", "bittorrent", &["bittorrent"], "BitTorrent range (last port)"),
    (9001, "tcp", "tor-relay", &["tls"], "Tor relays' ORPort default: TLS; IANA lists etlservicemgr"),
    (9030, "tcp", "tor-dir", &["http"], "Tor relays' DirPort default: HTTP; not registered"),
    (8443, "tcp", "https-alt", &["tls", "http2"], "the common alternative HTTPS port (IANA: pcsync-https)"),
    (3128, "tcp", "http-proxy", &["http", "http2"], "Squid's default proxy port (IANA: ndl-aas)"),
    (8080, "tcp", "http-proxy", &["http", "http2"], "web proxies and app servers; netbase: http-alt"),
    (8000, "tcp", "http-alt", &["http", "http2"], "development and appliance web servers (IANA: irdmi)"),
    (8008, "tcp", "http-alt", &["http", "http2"], "IANA's http-alt, missing from netbase"),
    (8888, "tcp", "http-alt", &["http", "http2"], "common alternative web port (IANA: ddi-tcp-1)"),
    (1080, "tcp", "socks", &["socks4", "socks5"], "SOCKS, in case netbase lacks it"),
    (2525, "tcp", "smtp-alt", &["smtp", "tls"], "the customary alternative SMTP submission port"),
    (3268, "tcp", "msft-gc", &["ldap"], "Active Directory global catalog (LDAP), missing from netbase"),
    (3269, "tcp", "msft-gc-ssl", &["tls"], "Active Directory global catalog over TLS"),
    (5355, "udp", "llmnr", &["dns"], "LLMNR (DNS format), missing from netbase"),
    (3478, "udp tcp", "stun", &["stun"], "STUN/TURN, missing from netbase"),
    (5900, "tcp", "rfb", &["vnc"], "VNC's first display, missing from netbase"),
    (5985, "tcp", "wsman", &["http"], "WinRM (WS-Management over HTTP), which IANA lists as wsman"),
    (5986, "tcp", "wsmans", &["tls"], "WinRM over TLS (IANA: wsmans)"),
    (5901, "tcp", "rfb", &["vnc"], "VNC's second display"),
    (3389, "udp", "ms-wbt-server", &["rdp"], "RDP's UDP transport; netbase lists TCP only"),
];

/// The minimal table used without a services file: (service, port, transports),
/// well-known IANA assignments the port rules depend on.
pub const BUILTIN: &[(&str, u16, &str)] = &[
    ("ftp", 21, "tcp"),
    ("ssh", 22, "tcp"),
    ("telnet", 23, "tcp"),
    ("smtp", 25, "tcp"),
    ("domain", 53, "tcp udp"),
    ("bootps", 67, "udp"),
    ("bootpc", 68, "udp"),
    ("tftp", 69, "udp"),
    ("http", 80, "tcp"),
    ("kerberos", 88, "tcp udp"),
    ("pop3", 110, "tcp"),
    ("ntp", 123, "udp"),
    ("netbios-ns", 137, "udp"),
    ("netbios-ssn", 139, "tcp"),
    ("imap2", 143, "tcp"),
    ("snmp", 161, "tcp udp"),
    ("snmp-trap", 162, "tcp udp"),
    ("ldap", 389, "tcp udp"),
    ("https", 443, "tcp udp"),
    ("microsoft-ds", 445, "tcp"),
    ("submissions", 465, "tcp"),
    ("isakmp", 500, "udp"),
    ("syslog", 514, "udp"),
    ("rtsp", 554, "tcp udp"),
    ("submission", 587, "tcp"),
    ("ldaps", 636, "tcp"),
    ("domain-s", 853, "tcp udp"),
    ("ftps", 990, "tcp"),
    ("telnets", 992, "tcp"),
    ("imaps", 993, "tcp"),
    ("pop3s", 995, "tcp"),
    ("openvpn", 1194, "tcp udp"),
    ("ms-sql-s", 1433, "tcp"),
    ("mysql", 3306, "tcp"),
    ("ms-wbt-server", 3389, "tcp"),
    ("ipsec-nat-t", 4500, "udp"),
    ("sip", 5060, "tcp udp"),
    ("sip-tls", 5061, "tcp"),
    ("xmpp-client", 5222, "tcp"),
    ("mdns", 5353, "udp"),
    ("postgresql", 5432, "tcp"),
    ("amqps", 5671, "tcp"),
    ("amqp", 5672, "tcp"),
    ("redis", 6379, "tcp"),
    ("ircd", 6667, "tcp"),
    ("ircs-u", 6697, "tcp"),
    ("http-alt", 8080, "tcp"),
];

/// The identifier names an IANA service name (or alias) stands for over `tcp`
/// or UDP; empty for a service no identifier knows.
#[must_use]
pub fn protocols_of_service(service: &str, tcp: bool) -> &'static [&'static str] {
    match (service, tcp) {
        ("ftp", true) => &["ftp", "tls"],
        ("ssh", true) => &["ssh"],
        ("telnet", true) => &["telnet"],
        ("smtp" | "mail" | "submission", true) => &["smtp", "tls"],
        ("domain", _) | ("mdns" | "llmnr", false) => &["dns"],
        ("http" | "www" | "www-http" | "http-alt" | "webcache", true) => &["http", "http2"],
        ("https", true) => &["tls", "http2"],
        ("https", false) => &["quic"],
        ("pop3" | "pop-3", true) => &["pop3", "tls"],
        ("imap2" | "imap" | "imap3", true) => &["imap", "tls"],
        ("ldap", _) | ("msft-gc", true) => &["ldap"],
        ("kerberos" | "kerberos5" | "krb5" | "kerberos-sec" | "kerberos4" | "kerberos-iv" | "kdc", _) => {
            &["kerberos"]
        }
        ("netbios-ns" | "netbios-dgm", false) => &["netbios"],
        ("netbios-ssn", true) => &["netbios", "smb"],
        ("microsoft-ds", true) => &["smb"],
        ("ms-wbt-server", _) => &["rdp", "tls"],
        ("mysql", true) => &["mysql", "tls"],
        ("postgresql" | "postgres", true) => &["postgresql", "tls"],
        ("ms-sql-s", true) => &["mssql", "tls"],
        ("ntp", false) => &["ntp"],
        ("snmp" | "snmp-trap" | "snmptrap", _) => &["snmp"],
        ("bootps" | "bootpc", false) => &["dhcp"],
        ("tftp", false) => &["tftp"],
        ("syslog", false) => &["syslog"],
        ("openvpn", _) => &["openvpn"],
        ("isakmp" | "ipsec-nat-t", false) => &["ike"],
        ("sip", _) => &["sip"],
        ("rtsp", _) => &["rtsp"],
        ("amqp", true) => &["amqp"],
        ("mqtt", true) => &["mqtt"],
        ("redis", true) => &["redis"],
        ("socks", true) => &["socks4", "socks5"],
        ("ircd" | "irc", true) => &["irc"],
        ("xmpp-client" | "xmpp-server", true) => &["xmpp"],
        // Services spoken over TLS from the first byte.
        (
            "submissions" | "ssmtp" | "smtps" | "imaps" | "pop3s" | "ldaps" | "ftps" | "telnets" | "ircs-u"
            | "sip-tls" | "amqps" | "syslog-tls" | "secure-mqtt" | "msft-gc-ssl" | "nntps",
            true,
        ) => &["tls"],
        ("domain-s", true) => &["tls"],
        // DNS over QUIC (RFC 9250) uses 853/udp too; DTLS is not identified.
        ("domain-s", false) => &["quic"],
        _ => &[],
    }
}

impl Registry {
    /// The registry from the services file at `path`, with the supplement; the
    /// built-in table (and a warning saying why) when the file cannot be used.
    #[must_use]
    pub fn load(path: &Path) -> (Self, Option<RegistryWarning>) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let registry = Self::from_services_text(&text);
                if registry.entries.is_empty() {
                    (Self::builtin(), Some(RegistryWarning::Empty { path: path.to_owned() }))
                } else {
                    (registry.with_supplement(), None)
                }
            }
            Err(e) => {
                let warning = RegistryWarning::Unreadable { path: path.to_owned(), reason: e.to_string() };
                (Self::builtin(), Some(warning))
            }
        }
    }

    /// The built-in minimal table with the supplement.
    #[must_use]
    pub fn builtin() -> Self {
        let mut registry = Self::default();
        for &(service, port, transports) in BUILTIN {
            for tcp in transports_of(transports) {
                registry.add(port, tcp, service, protocols_of_service(service, tcp));
            }
        }
        registry.finish();
        registry.with_supplement()
    }

    /// The entries of a services file's text (`name port/proto [aliases] [# comment]`
    /// lines; other transports than TCP and UDP and malformed lines are skipped),
    /// without the supplement.
    #[must_use]
    pub fn from_services_text(text: &str) -> Self {
        let mut registry = Self::default();
        for line in text.lines().take(MAX_LINES) {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (words.next(), words.next()) else { continue };
            let Some((port, proto)) = port_proto.split_once('/') else { continue };
            let (Ok(port), tcp) = (port.parse::<u16>(), proto == "tcp") else { continue };
            if !tcp && proto != "udp" {
                continue;
            }
            // The name, or else the first alias, that an identifier knows.
            let protocols = std::iter::once(name)
                .chain(words.take(8))
                .map(|n| protocols_of_service(n, tcp))
                .find(|p| !p.is_empty())
                .unwrap_or(&[]);
            registry.add(port, tcp, name, protocols);
        }
        registry.finish();
        registry
    }

    fn with_supplement(mut self) -> Self {
        for &(port, transports, label, protocols, _why) in SUPPLEMENT {
            for tcp in transports_of(transports) {
                self.add(port, tcp, label, protocols);
            }
        }
        self.finish();
        self
    }

    /// Adds `protocols` to the (port, transport) entry, creating it with `service`.
    fn add(&mut self, port: u16, tcp: bool, service: &str, protocols: &[&'static str]) {
        match self.entries.iter_mut().rev().find(|e| e.port == port && e.tcp == tcp) {
            Some(entry) => {
                for p in protocols {
                    if !entry.protocols.contains(p) {
                        entry.protocols.push(p);
                    }
                }
            }
            None => {
                self.entries.push(Entry { port, tcp, service: service.into(), protocols: protocols.to_vec() })
            }
        }
    }

    fn finish(&mut self) {
        self.entries.sort_by_key(|e| (e.port, e.tcp));
        self.entries.dedup_by(|later, kept| {
            let same = later.port == kept.port && later.tcp == kept.tcp;
            if same {
                for p in &later.protocols {
                    if !kept.protocols.contains(p) {
                        kept.protocols.push(p);
                    }
                }
            }
            same
        });
    }

    fn entry(&self, port: u16, transport: Transport) -> Option<&Entry> {
        let key = (port, transport == Transport::Tcp);
        let at = self.entries.binary_search_by_key(&key, |e| (e.port, e.tcp)).ok()?;
        self.entries.get(at)
    }

    /// The identifier names `port` over `transport` is registered for (empty
    /// when none: unassigned, or assigned to a service no identifier knows).
    #[must_use]
    pub fn protocols(&self, port: u16, transport: Transport) -> &[&'static str] {
        self.entry(port, transport).map_or(&[], |e| &e.protocols)
    }

    /// The service name `port` over `transport` is assigned to, if any.
    #[must_use]
    pub fn service(&self, port: u16, transport: Transport) -> Option<&str> {
        self.entry(port, transport).map(|e| &*e.service)
    }

    /// How many (port, transport) entries the registry holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the registry holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `true` for TCP, `false` for UDP, for each transport named in `list`.
fn transports_of(list: &str) -> impl Iterator<Item = bool> + '_ {
    list.split(' ').filter_map(|t| match t {
        "tcp" => Some(true),
        "udp" => Some(false),
        _ => None,
    })
}

static GLOBAL: OnceLock<(Registry, Option<RegistryWarning>)> = OnceLock::new();

/// Loads the process-wide registry from `path` unless it is loaded already.
/// Returns the load's warning (if any); `Err` with the path when the registry
/// had been loaded before (from another path or the default).
pub fn init_global(path: &Path) -> Result<Option<RegistryWarning>, PathBuf> {
    let mut loaded_here = false;
    let (_, warning) = GLOBAL.get_or_init(|| {
        loaded_here = true;
        Registry::load(path)
    });
    if loaded_here { Ok(warning.clone()) } else { Err(path.to_owned()) }
}

/// The process-wide registry (loaded from [`DEFAULT_SERVICES`] on first use
/// if [`init_global`] was not called).
pub fn global() -> &'static Registry {
    &GLOBAL.get_or_init(|| Registry::load(Path::new(DEFAULT_SERVICES))).0
}

/// The warning of the process-wide registry's load, if any.
pub fn global_warning() -> Option<&'static RegistryWarning> {
    GLOBAL.get_or_init(|| Registry::load(Path::new(DEFAULT_SERVICES))).1.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# Network services, Internet style
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
kerberos\t88/tcp\t\tkerberos5 krb5 kerberos-sec\t# Kerberos v5
https\t\t443/tcp
https\t\t443/udp\t\t\t\t# HTTP/3
amqp\t\t5672/sctp
bogus line without a port
ms-wbt-server\t3389/tcp
imap2\t\t143/tcp\t\timap\t\t# Interim Mail Access P 2 and 4
";

    #[test]
    fn parses_a_services_file_into_identifier_names() {
        let r = Registry::from_services_text(SAMPLE);
        assert_eq!(r.protocols(22, Transport::Tcp), ["ssh"]);
        assert_eq!(r.protocols(22, Transport::Udp), [] as [&str; 0]);
        assert_eq!(r.protocols(53, Transport::Udp), ["dns"]);
        assert_eq!(r.protocols(88, Transport::Tcp), ["kerberos"]);
        assert_eq!(r.protocols(443, Transport::Tcp), ["tls", "http2"]);
        assert_eq!(r.protocols(443, Transport::Udp), ["quic"]);
        assert_eq!(r.protocols(3389, Transport::Tcp), ["rdp", "tls"]);
        assert_eq!(r.protocols(143, Transport::Tcp), ["imap", "tls"]);
        assert_eq!(r.protocols(1, Transport::Tcp), [] as [&str; 0], "a service no identifier knows");
        assert_eq!(r.service(1, Transport::Tcp), Some("tcpmux"));
        assert_eq!(r.protocols(5672, Transport::Tcp), [] as [&str; 0], "SCTP is skipped");
        assert_eq!(r.len(), 9);
    }

    #[test]
    fn supplement_adds_de_facto_ports() {
        let (r, warning) = Registry::load(Path::new("/nonexistent/services"));
        assert!(matches!(warning, Some(RegistryWarning::Unreadable { .. })), "{warning:?}");
        assert_eq!(r.protocols(27017, Transport::Tcp), ["mongodb"]);
        assert_eq!(r.protocols(51820, Transport::Udp), ["wireguard"]);
        assert_eq!(r.protocols(6885, Transport::Udp), ["bittorrent"]);
        assert_eq!(r.protocols(9001, Transport::Tcp), ["tls"]);
        assert_eq!(r.service(9001, Transport::Tcp), Some("tor-relay"));
        assert_eq!(r.protocols(8080, Transport::Tcp), ["http", "http2"]);
        // The built-in table still has the essentials.
        assert_eq!(r.protocols(22, Transport::Tcp), ["ssh"]);
        assert_eq!(r.protocols(53, Transport::Tcp), ["dns"]);
        assert_eq!(r.protocols(853, Transport::Tcp), ["tls"]);
    }

    #[test]
    fn empty_file_falls_back_with_a_warning() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("services");
        std::fs::write(&path, "# nothing here\n").expect("write");
        let (r, warning) = Registry::load(&path);
        assert!(matches!(warning, Some(RegistryWarning::Empty { .. })));
        assert_eq!(r.protocols(3389, Transport::Tcp), ["rdp", "tls"]);
        assert!(warning.is_some_and(|w| w.to_string().contains("built-in")));
    }

    #[test]
    fn system_services_file_maps_the_well_known_ports() {
        let path = Path::new(DEFAULT_SERVICES);
        if !path.exists() {
            eprintln!("skipped: {DEFAULT_SERVICES} is absent");
            return;
        }
        let (r, warning) = Registry::load(path);
        assert_eq!(warning, None);
        assert!(r.protocols(22, Transport::Tcp).contains(&"ssh"));
        assert!(r.protocols(3389, Transport::Tcp).contains(&"rdp"));
        assert!(r.protocols(5432, Transport::Tcp).contains(&"postgresql"));
        assert!(r.protocols(53, Transport::Udp).contains(&"dns"));
        assert!(r.protocols(853, Transport::Tcp).contains(&"tls"));
        assert!(r.protocols(445, Transport::Tcp).contains(&"smb"));
        assert!(r.protocols(1433, Transport::Tcp).contains(&"mssql"));
        assert!(r.protocols(993, Transport::Tcp).contains(&"tls"));
    }

    #[test]
    fn every_registered_name_is_an_identifier_name() {
        let r = Registry::builtin();
        for entry in &r.entries {
            for p in &entry.protocols {
                assert!(crate::protocol::model::NAMES.contains(p), "{p} on {}", entry.port);
            }
        }
    }
}
