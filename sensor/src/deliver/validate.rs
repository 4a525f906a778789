//! `[alerts]` raw → validated: ranges, formats, the keys each sink type takes, unique names.
//! Every error is a `ConfigError::Invalid` naming the dotted key (`alerts.sinks[2].url`), the
//! value as written and what would be valid; the ranges are those documented in
//! `configs/sensor.example.toml`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{
    DeliverySettings, Format, FsyncPolicy, RawAlerts, RawSink, SinkKind, SinkSettings, SyslogProtocol,
    TlsSettings,
};
use crate::config::ConfigError;

const TYPES: [&str; 8] = ["file", "http", "splunk_hec", "elasticsearch", "syslog", "redis", "nats", "kafka"];

pub(crate) fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

struct Check<'a> {
    origin: &'a Path,
}

impl Check<'_> {
    fn invalid(&self, key: &str, value: String, expected: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.origin.to_path_buf(),
            key: key.to_owned(),
            value,
            expected: expected.into(),
        }
    }

    fn int<T: TryFrom<i64>>(
        &self,
        key: &str,
        v: i64,
        lo: i64,
        hi: i64,
        unit: &str,
    ) -> Result<T, ConfigError> {
        if (lo..=hi).contains(&v)
            && let Ok(x) = T::try_from(v)
        {
            return Ok(x);
        }
        Err(self.invalid(key, v.to_string(), format!("an integer from {lo} to {hi} {unit}")))
    }

    fn ms(&self, key: &str, v: i64, lo: i64, hi: i64) -> Result<Duration, ConfigError> {
        self.int(key, v, lo, hi, "milliseconds").map(Duration::from_millis)
    }

    fn one_of<'v>(&self, key: &str, v: &str, valid: &[&'v str]) -> Result<&'v str, ConfigError> {
        valid.iter().copied().find(|x| *x == v).ok_or_else(|| {
            let list: Vec<String> = valid.iter().map(|x| toml_string(x)).collect();
            self.invalid(key, toml_string(v), format!("one of {}", list.join(", ")))
        })
    }

    fn non_empty(&self, key: &str, v: Option<String>, example: &str) -> Result<String, ConfigError> {
        match v {
            Some(s) if !s.trim().is_empty() && !s.contains('\0') => Ok(s),
            other => Err(self.invalid(
                key,
                toml_string(other.as_deref().unwrap_or("")),
                format!("a non-empty string, e.g. {example}"),
            )),
        }
    }

    fn url(
        &self,
        key: &str,
        v: Option<String>,
        schemes: &[&str],
        example: &str,
    ) -> Result<String, ConfigError> {
        let url = self.non_empty(key, v, example)?;
        if schemes.iter().any(|s| url.starts_with(&format!("{s}://"))) {
            Ok(url)
        } else {
            Err(self.invalid(
                key,
                toml_string(&url),
                format!("a URL starting with {}://, e.g. {example}", schemes.join("://, ")),
            ))
        }
    }

    fn tls(&self, prefix: &str, raw: &RawSink) -> Result<TlsSettings, ConfigError> {
        let path = |v: &Option<String>| v.as_ref().filter(|s| !s.is_empty()).map(PathBuf::from);
        let client_cert = match (path(&raw.client_cert_file), path(&raw.client_key_file)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.invalid(
                    &format!("{prefix}.client_key_file"),
                    "\"\"".into(),
                    "the client certificate's key file (PEM), since client_cert_file is set",
                ));
            }
            (None, Some(_)) => {
                return Err(self.invalid(
                    &format!("{prefix}.client_cert_file"),
                    "\"\"".into(),
                    "the client certificate file (PEM), since client_key_file is set",
                ));
            }
        };
        Ok(TlsSettings { ca_file: path(&raw.ca_file), client_cert })
    }
}

/// The keys each type accepts besides the common ones.
fn allowed_keys(kind: &str) -> &'static [&'static str] {
    const TLS: [&str; 3] = ["ca_file", "client_cert_file", "client_key_file"];
    match kind {
        "file" => &["path", "rotate_bytes", "rotate_keep", "format"],
        "http" => &["url", "token", "gzip", "format", TLS[0], TLS[1], TLS[2]],
        "splunk_hec" => &["url", "token", "index", "sourcetype", "gzip", "format", TLS[0], TLS[1], TLS[2]],
        "elasticsearch" => &["url", "token", "index", "gzip", "format", TLS[0], TLS[1], TLS[2]],
        "syslog" => {
            &["protocol", "address", "server_name", "facility", "app_name", "format", TLS[0], TLS[1], TLS[2]]
        }
        "redis" => &["url", "stream", "maxlen", "format"],
        "kafka" => &[
            "brokers",
            "topic",
            "create_partitions",
            "compression",
            "format",
            "tls",
            TLS[0],
            TLS[1],
            TLS[2],
            "sasl_mechanism",
            "sasl_username",
            "sasl_password",
        ],
        _ => &["url", "subject", "stream", "format"],
    }
}

/// The per-type keys that are written in `raw`.
fn written_keys(raw: &RawSink) -> Vec<&'static str> {
    let flags = [
        ("format", raw.format.is_some()),
        ("path", raw.path.is_some()),
        ("rotate_bytes", raw.rotate_bytes.is_some()),
        ("rotate_keep", raw.rotate_keep.is_some()),
        ("url", raw.url.is_some()),
        ("token", raw.token.is_some()),
        ("gzip", raw.gzip.is_some()),
        ("index", raw.index.is_some()),
        ("sourcetype", raw.sourcetype.is_some()),
        ("ca_file", raw.ca_file.is_some()),
        ("client_cert_file", raw.client_cert_file.is_some()),
        ("client_key_file", raw.client_key_file.is_some()),
        ("protocol", raw.protocol.is_some()),
        ("address", raw.address.is_some()),
        ("server_name", raw.server_name.is_some()),
        ("facility", raw.facility.is_some()),
        ("app_name", raw.app_name.is_some()),
        ("stream", raw.stream.is_some()),
        ("maxlen", raw.maxlen.is_some()),
        ("subject", raw.subject.is_some()),
        ("brokers", raw.brokers.is_some()),
        ("topic", raw.topic.is_some()),
        ("create_partitions", raw.create_partitions.is_some()),
        ("compression", raw.compression.is_some()),
        ("tls", raw.tls.is_some()),
        ("sasl_mechanism", raw.sasl_mechanism.is_some()),
        ("sasl_username", raw.sasl_username.is_some()),
        ("sasl_password", raw.sasl_password.is_some()),
    ];
    flags.into_iter().filter(|(_, written)| *written).map(|(k, _)| k).collect()
}

/// Validates `[alerts]`, attributing errors to `origin`.
pub(crate) fn validate(raw: RawAlerts, origin: &Path) -> Result<DeliverySettings, ConfigError> {
    let c = Check { origin };
    if raw.spool_dir.trim().is_empty() || raw.spool_dir.contains('\0') {
        return Err(c.invalid("alerts.spool_dir", toml_string(&raw.spool_dir), "a directory path"));
    }
    let spool_max_bytes: u64 =
        c.int("alerts.spool_max_bytes", raw.spool_max_bytes, 1 << 20, 1 << 40, "bytes (1 MiB to 1 TiB)")?;
    let segment_bytes: u64 =
        c.int("alerts.segment_bytes", raw.segment_bytes, 64 << 10, 1 << 30, "bytes (64 KiB to 1 GiB)")?;
    if segment_bytes.saturating_mul(2) > spool_max_bytes {
        return Err(c.invalid(
            "alerts.segment_bytes",
            segment_bytes.to_string(),
            format!(
                "at most half of alerts.spool_max_bytes ({spool_max_bytes}), so the spool holds two segments"
            ),
        ));
    }
    let fsync = match c.one_of("alerts.fsync", &raw.fsync, &["always", "interval", "never"])? {
        "always" => FsyncPolicy::Always,
        "never" => FsyncPolicy::Never,
        _ => FsyncPolicy::Interval(c.ms("alerts.fsync_interval_ms", raw.fsync_interval_ms, 1, 60_000)?),
    };
    let full_wait = c.ms("alerts.full_wait_ms", raw.full_wait_ms, 0, 60_000)?;
    let drain_timeout = c.ms("alerts.drain_timeout_ms", raw.drain_timeout_ms, 0, 3_600_000)?;
    let spool_dir = PathBuf::from(&raw.spool_dir);
    let dead_letter = if raw.dead_letter.is_empty() {
        spool_dir.join("dead-letter.jsonl")
    } else {
        PathBuf::from(&raw.dead_letter)
    };
    let mut names = BTreeSet::new();
    let mut sinks = Vec::with_capacity(raw.sinks.len());
    for (i, s) in raw.sinks.into_iter().enumerate() {
        let sink = sink(&c, &format!("alerts.sinks[{i}]"), s)?;
        if !names.insert(sink.name.clone()) {
            return Err(c.invalid(
                &format!("alerts.sinks[{i}].name"),
                toml_string(&sink.name),
                "a name no other sink has",
            ));
        }
        sinks.push(sink);
    }
    Ok(DeliverySettings {
        spool_dir,
        spool_max_bytes,
        segment_bytes,
        fsync,
        full_wait,
        drain_timeout,
        dead_letter,
        sinks,
    })
}

fn sink(c: &Check<'_>, p: &str, raw: RawSink) -> Result<SinkSettings, ConfigError> {
    let key = |k: &str| format!("{p}.{k}");
    let kind = c.one_of(&key("type"), &raw.kind, &TYPES)?;
    let name_ok = (1..=64).contains(&raw.name.len())
        && raw.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(c.invalid(&key("name"), toml_string(&raw.name), "1 to 64 letters, digits, '_' or '-'"));
    }
    if let Some(stray) = written_keys(&raw).into_iter().find(|k| !allowed_keys(kind).contains(k)) {
        return Err(c.invalid(
            &key(stray),
            "(set)".to_owned(),
            format!(
                "no such key for type = {}; it takes {}",
                toml_string(kind),
                allowed_keys(kind).join(", ")
            ),
        ));
    }
    let formats: &[&str] = if kind == "syslog" { &["ecs", "ocsf", "cef", "leef"] } else { &["ecs", "ocsf"] };
    let format = match c.one_of(&key("format"), raw.format.as_deref().unwrap_or("ecs"), formats)? {
        "ocsf" => Format::Ocsf,
        "cef" => Format::Cef,
        "leef" => Format::Leef,
        _ => Format::Ecs,
    };
    let retry_initial = c.ms(&key("retry_initial_ms"), raw.retry_initial_ms, 1, 600_000)?;
    let retry_max = c.ms(&key("retry_max_ms"), raw.retry_max_ms, raw.retry_initial_ms.max(1), 3_600_000)?;
    let gzip = raw.gzip.unwrap_or(false);
    let string = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_owned());
    let kind = match kind {
        "file" => SinkKind::File {
            path: PathBuf::from(c.non_empty(
                &key("path"),
                raw.path.clone(),
                "\"/var/log/nbad/alerts.jsonl\"",
            )?),
            rotate_bytes: c.int(
                &key("rotate_bytes"),
                raw.rotate_bytes.unwrap_or(100 << 20),
                4096,
                1 << 40,
                "bytes",
            )?,
            rotate_keep: c.int(&key("rotate_keep"), raw.rotate_keep.unwrap_or(5), 1, 1000, "files")?,
        },
        "http" => SinkKind::Http {
            url: c.url(
                &key("url"),
                raw.url.clone(),
                &["http", "https"],
                "\"https://collector:8443/alerts\"",
            )?,
            token: string(&raw.token, ""),
            gzip,
            tls: c.tls(p, &raw)?,
        },
        "splunk_hec" => SinkKind::SplunkHec {
            url: c.url(&key("url"), raw.url.clone(), &["http", "https"], "\"https://splunk:8088\"")?,
            token: c.non_empty(&key("token"), raw.token.clone(), "the HEC token \"12345678-...\"")?,
            index: string(&raw.index, ""),
            sourcetype: string(&raw.sourcetype, "nbad:alert"),
            gzip,
            tls: c.tls(p, &raw)?,
        },
        "elasticsearch" => SinkKind::Elasticsearch {
            url: c.url(&key("url"), raw.url.clone(), &["http", "https"], "\"https://opensearch:9200\"")?,
            index: c.non_empty(&key("index"), Some(string(&raw.index, "nbad-alerts")), "\"nbad-alerts\"")?,
            token: string(&raw.token, ""),
            gzip,
            tls: c.tls(p, &raw)?,
        },
        "syslog" => {
            let protocol = match c.one_of(
                &key("protocol"),
                raw.protocol.as_deref().unwrap_or("tls"),
                &["udp", "tcp", "tls"],
            )? {
                "udp" => SyslogProtocol::Udp,
                "tcp" => SyslogProtocol::Tcp,
                _ => SyslogProtocol::Tls,
            };
            let address = c.non_empty(&key("address"), raw.address.clone(), "\"siem.example.org:6514\"")?;
            let Some((host, port)) = address
                .rsplit_once(':')
                .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
            else {
                return Err(c.invalid(
                    &key("address"),
                    toml_string(&address),
                    "host:port, e.g. \"siem.example.org:6514\"",
                ));
            };
            let _ = port;
            let app_name = string(&raw.app_name, "nbad-sensor");
            if app_name.is_empty()
                || app_name.len() > 48
                || !app_name.bytes().all(|b| (33..=126).contains(&b))
            {
                return Err(c.invalid(
                    &key("app_name"),
                    toml_string(&app_name),
                    "1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME)",
                ));
            }
            SinkKind::Syslog {
                protocol,
                server_name: string(&raw.server_name, host.trim_start_matches('[').trim_end_matches(']')),
                address,
                facility: c.int(
                    &key("facility"),
                    raw.facility.unwrap_or(4),
                    0,
                    23,
                    "(RFC 5424 facility code; 4 = security/auth, 16-23 = local0-7)",
                )?,
                app_name,
                tls: c.tls(p, &raw)?,
            }
        }
        "redis" => SinkKind::Redis {
            url: c.url(&key("url"), raw.url.clone(), &["redis", "rediss"], "\"redis://127.0.0.1:6379\"")?,
            stream: c.non_empty(
                &key("stream"),
                Some(string(&raw.stream, "nbad:alerts")),
                "\"nbad:alerts\"",
            )?,
            maxlen: c.int(
                &key("maxlen"),
                raw.maxlen.unwrap_or(0),
                0,
                i64::MAX,
                "entries (0 = no trimming)",
            )?,
        },
        "kafka" => {
            let check = crate::config::check::Check { origin: c.origin };
            let s = |v: &Option<String>| v.clone().unwrap_or_default();
            let client = crate::kafka::validate_client(
                &check,
                p,
                crate::kafka::RawKafkaClient {
                    brokers: raw.brokers.clone().unwrap_or_default(),
                    topic: raw.topic.clone().unwrap_or_else(|| "nbad-alerts".to_owned()),
                    create_partitions: raw.create_partitions.unwrap_or(0),
                    compression: raw.compression.clone().unwrap_or_else(|| "lz4".to_owned()),
                    timeout_ms: raw.timeout_ms,
                    tls: raw.tls.unwrap_or(false),
                    ca_file: s(&raw.ca_file),
                    client_cert_file: s(&raw.client_cert_file),
                    client_key_file: s(&raw.client_key_file),
                    sasl_mechanism: s(&raw.sasl_mechanism),
                    sasl_username: s(&raw.sasl_username),
                    sasl_password: s(&raw.sasl_password),
                },
            )?;
            SinkKind::Kafka { client }
        }
        _ => SinkKind::Nats {
            url: c.url(&key("url"), raw.url.clone(), &["nats", "tls"], "\"nats://127.0.0.1:4222\"")?,
            subject: c.non_empty(
                &key("subject"),
                Some(string(&raw.subject, "nbad.alerts")),
                "\"nbad.alerts\"",
            )?,
            stream: string(&raw.stream, ""),
        },
    };
    Ok(SinkSettings {
        min_score: c.int(&key("min_score"), raw.min_score, 0, 100, "(risk score)")?,
        batch_max_events: c.int(&key("batch_max_events"), raw.batch_max_events, 1, 10_000, "alerts")?,
        timeout: c.ms(&key("timeout_ms"), raw.timeout_ms, 100, 600_000)?,
        retry_initial,
        retry_max,
        name: raw.name,
        format,
        kind,
    })
}
