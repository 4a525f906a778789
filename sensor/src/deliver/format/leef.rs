//! IBM QRadar Log Event Extended Format, LEEF 2.0, for syslog bodies.
//!
//! `LEEF:2.0|Vendor|Product|Version|EventID|x09|key=value<TAB>key=value…`: attributes are
//! separated by a tab, declared in the sixth header field as `x09`. Escaping: in header
//! fields a backslash and a pipe are escaped (`\\`, `\|`) and line breaks become spaces; in
//! attribute values a backslash is escaped (`\\`) and the delimiter and line breaks are
//! written `\t`, `\n`, `\r`, so a value can never split an attribute or the message. An
//! equals sign needs no escape in a value (QRadar splits each attribute at its first `=`).
//! `devTime` is epoch milliseconds (QRadar's default when `devTimeFormat` is absent); `sev`
//! is 1–10.

use super::{PRODUCT, VENDOR, VERSION, millis};
use crate::alert::{Alert, attack};

/// A header field, escaped.
pub(crate) fn header(value: &str) -> String {
    super::cef::header(value)
}

/// An attribute value, escaped.
pub(crate) fn value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The alert as one LEEF 2.0 event.
pub(crate) fn event(a: &Alert) -> String {
    let mut attrs: Vec<(&str, String)> = vec![
        ("devTime", millis(a.timestamp_ns).to_string()),
        ("cat", a.rule_name().to_owned()),
        ("sev", (a.risk_score / 10).clamp(1, 10).to_string()),
        ("src", a.host.to_string()),
    ];
    if let Some(peer) = a.peer {
        attrs.push(("dst", peer.to_string()));
    }
    if let Some(port) = a.port {
        attrs.push(("dstPort", port.to_string()));
    }
    if let Some(t) = &a.transport {
        attrs.push(("proto", t.to_uppercase()));
    }
    attrs.extend([
        ("externalId", a.id.clone()),
        ("riskScore", a.risk_score.to_string()),
        ("severity", a.severity.name().to_owned()),
        ("identHostName", a.sensor_id.clone()),
        ("metric", a.evidence.metric.clone()),
        ("observed", a.evidence.observed.to_string()),
        ("threshold", a.evidence.threshold.to_string()),
    ]);
    if let Some(inc) = &a.incident {
        attrs.push(("incidentId", inc.id.clone()));
    }
    if let Some((tactics, techniques)) = attack::flat_ids(&attack::of_alert(a)) {
        attrs.extend([("mitreTactic", tactics), ("mitreTechnique", techniques)]);
    }
    attrs.push(("msg", a.message.clone()));
    let attrs: Vec<String> = attrs.into_iter().map(|(k, v)| format!("{k}={}", value(&v))).collect();
    format!(
        "LEEF:2.0|{}|{}|{}|{}|x09|{}",
        header(VENDOR),
        header(PRODUCT),
        header(VERSION),
        header(a.rule_name()),
        attrs.join("\t")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::format::tests::sample;

    #[test]
    fn values_escape_the_tab_delimiter_backslash_and_line_breaks_but_not_equals() {
        assert_eq!(value("a\tb"), r"a\tb");
        assert_eq!(value(r"c:\x=1"), r"c:\\x=1");
        assert_eq!(value("l1\r\nl2"), r"l1\r\nl2");
    }

    #[test]
    fn an_alert_becomes_one_leef_line_whose_attributes_split_on_tabs() {
        let a = sample();
        let line = event(&a);
        assert!(line.starts_with("LEEF:2.0|nbad|nbad-sensor|"), "{line}");
        let (_, attrs) = line.split_once("|x09|").expect("delimiter field");
        let pairs: Vec<(&str, &str)> =
            attrs.split('\t').map(|kv| kv.split_once('=').expect("key=value")).collect();
        assert!(pairs.contains(&("externalId", a.id.as_str())));
        assert!(pairs.contains(&("sev", "8")));
        assert!(pairs.contains(&("mitreTactic", "TA0007")) && pairs.contains(&("mitreTechnique", "T1046")));
        assert!(pairs.iter().any(|(k, v)| *k == "msg" && v.ends_with(r#""quoted"\nnext"#)));
        assert!(!line.contains('\n'));
    }
}
