//! An alert (or incident record) as the outputs may see it.
//!
//! Pseudonymisation rewrites every place an inside address can be: `host`, `peer`, the
//! incident record's stage peers, addresses written into the message and into any evidence
//! string (however deep), the ids (keyed pseudonyms, see [`super::pseudonym`]) and the
//! Community IDs. Dropping payload fields replaces, in the evidence details, every string
//! that is not one of the detectors' own enumerations ([`SENSOR_MADE`]) and not purely an
//! address or a number by [`REDACTED`], so a detail added by a future detector is dropped
//! unless someone lists it here; the message is then scrubbed of those exact values and of
//! every name-shaped token ([`super::text`]).

use serde_json::Value;

use super::pseudonym::Pseudonyms;
use super::text::{self, REDACTED};
use crate::alert::Alert;

/// Evidence detail keys whose string values the sensor makes up itself (rule names,
/// directions, feature names, times, protocol names, TLS fingerprints of the client
/// software): kept when payload fields are dropped. JA4 and ALPN describe the client's TLS
/// stack, not the site it went to, and are kept; everything else that is a string goes.
pub const SENSOR_MADE: &[&str] = &[
    "rule",
    "direction",
    "encoding",
    "top_feature",
    "features",
    "hour_of_day_slot",
    "timezone",
    "protocol",
    "expected",
    "peer_group",
    "amplification",
    "first_failure",
    "peak_second",
    "combinations",
    "tcp_flags",
    "query_types",
    "by_reason",
    "http_method",
    "alpn",
    "ja4",
    "window",
    "stages",
];

/// Shorter dropped values are not searched for in the message (they would match words).
const MIN_SCRUBBED_LEN: usize = 4;

/// `alert` rewritten: addresses pseudonymised when `names` is given, payload-derived strings
/// dropped when `drop_payload` is set.
pub fn rewrite(alert: &Alert, names: Option<&mut Pseudonyms>, drop_payload: bool) -> Alert {
    let mut a = alert.clone();
    let mut dropped = Vec::new();
    if drop_payload {
        for (key, value) in &mut a.evidence.details {
            if !SENSOR_MADE.contains(&key.as_str()) {
                drop_strings(value, &mut dropped);
            }
        }
        dropped.retain(|s: &String| s.len() >= MIN_SCRUBBED_LEN);
        // Longest first, so a value inside another is not replaced first.
        dropped.sort_by_key(|s| std::cmp::Reverse(s.len()));
        a.message = scrub_prose(&a.message, &dropped);
        if let Some(record) = a.record.as_mut() {
            for step in &mut record.steps {
                step.first_message = scrub_prose(&step.first_message, &[]);
            }
        }
    }
    if let Some(p) = names {
        pseudonymize(&mut a, p);
    }
    a
}

/// Replaces every string under `value` that could carry a name by [`REDACTED`], noting it.
fn drop_strings(value: &mut Value, dropped: &mut Vec<String>) {
    match value {
        Value::String(s) if !text::is_numeric_or_address(s) => {
            dropped.push(std::mem::replace(s, REDACTED.to_owned()));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| drop_strings(v, dropped)),
        Value::Object(map) => {
            let renamed: Vec<String> =
                map.keys().filter(|k| text::redact_names(k) != k.as_str()).cloned().collect();
            for k in renamed {
                if let Some(v) = map.remove(&k) {
                    map.insert(text::redact_names(&k).into_owned(), v);
                    dropped.push(k);
                }
            }
            map.values_mut().for_each(|v| drop_strings(v, dropped));
        }
        _ => {}
    }
}

fn scrub_prose(message: &str, dropped: &[String]) -> String {
    let mut m = message.to_owned();
    for value in dropped {
        if m.contains(value.as_str()) {
            m = m.replace(value.as_str(), REDACTED);
        }
    }
    text::redact_names(&m).into_owned()
}

fn pseudonymize(a: &mut Alert, p: &mut Pseudonyms) {
    a.id = p.id(&a.id);
    a.host = p.addr(a.host);
    a.peer = a.peer.map(|ip| p.addr(ip));
    a.community_id = a.community_id.as_deref().and_then(|c| p.community_id(c));
    let ids = std::mem::take(&mut a.evidence.community_ids);
    a.evidence.community_ids = ids.iter().filter_map(|c| p.community_id(c)).collect();
    let mut f = |ip| p.addr(ip);
    a.message = text::rewrite_addrs(&a.message, &mut f).into_owned();
    for value in a.evidence.details.values_mut() {
        rewrite_value(value, &mut f);
    }
    if let Some(record) = a.record.as_mut() {
        for step in &mut record.steps {
            step.peers.iter_mut().for_each(|ip| *ip = f(*ip));
            step.first_message = text::rewrite_addrs(&step.first_message, &mut f).into_owned();
        }
    }
    if let Some(inc) = a.incident.as_mut() {
        let real = std::mem::take(&mut inc.id);
        inc.id = p.id(&real);
        inc.related.iter_mut().for_each(|id| *id = p.id(id));
        // An incident record's narrative names its incident.
        if a.message.contains(&real) {
            a.message = a.message.replace(&real, &inc.id);
        }
    }
}

fn rewrite_value(value: &mut Value, f: &mut dyn FnMut(std::net::IpAddr) -> std::net::IpAddr) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(new) = text::rewrite_addrs(s, f) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_value(v, f)),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let new = text::rewrite_addrs(&k, f).into_owned();
                if let Some(mut v) = map.remove(&k) {
                    rewrite_value(&mut v, f);
                    map.insert(new, v);
                }
            }
        }
        _ => {}
    }
}
