//! `[alerts]` printed back as TOML for `nbad-sensor check-config`: every key, defaults included,
//! so the output loads to the same settings.

use std::fmt::{self, Write as _};
use std::path::Path;
use std::time::Duration;

use super::config::{DeliverySettings, FsyncPolicy, SinkKind, SyslogProtocol, TlsSettings};
use super::validate::toml_string;

impl DeliverySettings {
    /// `[alerts]` and its sinks as TOML, every key written (for `check-config`).
    pub(crate) fn write_effective(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let ms = |d: Duration| d.as_millis();
        writeln!(f, "\n[alerts]")?;
        writeln!(f, "spool_dir = {}", toml_string(&self.spool_dir.display().to_string()))?;
        writeln!(f, "spool_max_bytes = {}", self.spool_max_bytes)?;
        writeln!(f, "segment_bytes = {}", self.segment_bytes)?;
        let (fsync, interval) = match self.fsync {
            FsyncPolicy::Always => ("always", 1000),
            FsyncPolicy::Interval(d) => ("interval", ms(d)),
            FsyncPolicy::Never => ("never", 1000),
        };
        writeln!(f, "fsync = {}", toml_string(fsync))?;
        writeln!(f, "fsync_interval_ms = {interval}")?;
        writeln!(f, "full_wait_ms = {}", ms(self.full_wait))?;
        writeln!(f, "drain_timeout_ms = {}", ms(self.drain_timeout))?;
        writeln!(f, "dead_letter = {}", toml_string(&self.dead_letter.display().to_string()))?;
        for s in &self.sinks {
            let mut t = String::new();
            let q = |v: &str| toml_string(v);
            let path = |p: &Path| toml_string(&p.display().to_string());
            writeln!(t, "\n[[alerts.sinks]]\ntype = {}\nname = {}", q(s.kind.type_name()), q(&s.name))?;
            writeln!(t, "min_score = {}\nformat = {}", s.min_score, q(s.format.name()))?;
            writeln!(t, "batch_max_events = {}\ntimeout_ms = {}", s.batch_max_events, ms(s.timeout))?;
            writeln!(t, "retry_initial_ms = {}\nretry_max_ms = {}", ms(s.retry_initial), ms(s.retry_max))?;
            let tls = |t: &mut String, tls: &TlsSettings| -> fmt::Result {
                if let Some(ca) = &tls.ca_file {
                    writeln!(t, "ca_file = {}", path(ca))?;
                }
                if let Some((cert, key)) = &tls.client_cert {
                    writeln!(t, "client_cert_file = {}\nclient_key_file = {}", path(cert), path(key))?;
                }
                Ok(())
            };
            match &s.kind {
                SinkKind::File { path: p, rotate_bytes, rotate_keep } => {
                    writeln!(
                        t,
                        "path = {}\nrotate_bytes = {rotate_bytes}\nrotate_keep = {rotate_keep}",
                        path(p)
                    )?;
                }
                SinkKind::Http { url, token, gzip, tls: x } => {
                    writeln!(t, "url = {}\ntoken = {}\ngzip = {gzip}", q(url), q(token))?;
                    tls(&mut t, x)?;
                }
                SinkKind::SplunkHec { url, token, index, sourcetype, gzip, tls: x } => {
                    writeln!(t, "url = {}\ntoken = {}\nindex = {}", q(url), q(token), q(index))?;
                    writeln!(t, "sourcetype = {}\ngzip = {gzip}", q(sourcetype))?;
                    tls(&mut t, x)?;
                }
                SinkKind::Elasticsearch { url, index, token, gzip, tls: x } => {
                    writeln!(
                        t,
                        "url = {}\nindex = {}\ntoken = {}\ngzip = {gzip}",
                        q(url),
                        q(index),
                        q(token)
                    )?;
                    tls(&mut t, x)?;
                }
                SinkKind::Syslog { protocol, address, server_name, facility, app_name, tls: x } => {
                    let proto = match protocol {
                        SyslogProtocol::Udp => "udp",
                        SyslogProtocol::Tcp => "tcp",
                        SyslogProtocol::Tls => "tls",
                    };
                    writeln!(
                        t,
                        "protocol = {}\naddress = {}\nserver_name = {}",
                        q(proto),
                        q(address),
                        q(server_name)
                    )?;
                    writeln!(t, "facility = {facility}\napp_name = {}", q(app_name))?;
                    tls(&mut t, x)?;
                }
                SinkKind::Redis { url, stream, maxlen } => {
                    writeln!(t, "url = {}\nstream = {}\nmaxlen = {maxlen}", q(url), q(stream))?;
                }
                SinkKind::Nats { url, subject, stream } => {
                    writeln!(t, "url = {}\nsubject = {}\nstream = {}", q(url), q(subject), q(stream))?;
                }
                SinkKind::Kafka { client } => {
                    let brokers: Vec<String> = client.brokers.iter().map(|b| q(b)).collect();
                    writeln!(t, "brokers = [{}]", brokers.join(", "))?;
                    client.write_sink_effective(&mut t)?;
                }
            }
            f.write_str(&t)?;
        }
        Ok(())
    }
}
