//! ArcSight Common Event Format (CEF:0) for syslog bodies.
//!
//! Escaping (CEF Implementation Standard): in the seven header fields a backslash and a pipe are
//! escaped (`\\`, `\|`) and line breaks become spaces (a header is one line); in extension
//! values a backslash and an equals sign are escaped (`\\`, `\=`) and line breaks are written
//! `\n` / `\r`; pipes need no escape there. Severity is the risk score / 10 (0–10).

use super::{PRODUCT, VENDOR, VERSION, millis};
use crate::alert::{Alert, attack};

/// A header field, escaped.
pub(crate) fn header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An extension value, escaped.
pub(crate) fn value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// The alert as one CEF event.
pub(crate) fn event(a: &Alert) -> String {
    let ev = &a.evidence;
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", millis(a.timestamp_ns).to_string()),
        ("externalId", a.id.clone()),
        ("cat", a.rule_name().to_owned()),
        ("src", a.host.to_string()),
    ];
    if let Some(peer) = a.peer {
        ext.push(("dst", peer.to_string()));
    }
    if let Some(port) = a.port {
        ext.push(("dpt", port.to_string()));
    }
    if let Some(t) = &a.transport {
        ext.push(("proto", t.to_uppercase()));
    }
    ext.extend([
        ("start", millis(ev.window_start_ns).to_string()),
        ("end", millis(ev.window_end_ns).to_string()),
        ("dvchost", a.sensor_id.clone()),
        ("cn1", a.risk_score.to_string()),
        ("cn1Label", "riskScore".to_owned()),
        ("cfp1", ev.observed.to_string()),
        ("cfp1Label", ev.metric.clone()),
        ("cfp2", ev.threshold.to_string()),
        ("cfp2Label", "threshold".to_owned()),
    ]);
    if let Some(cid) = &a.community_id {
        ext.extend([("cs1", cid.clone()), ("cs1Label", "communityId".to_owned())]);
    }
    if let Some(inc) = &a.incident {
        ext.extend([("cs2", inc.id.clone()), ("cs2Label", "incidentId".to_owned())]);
    }
    if let Some((tactics, techniques)) = attack::flat_ids(&attack::of_alert(a)) {
        ext.extend([
            ("cs3", tactics),
            ("cs3Label", "mitreTactic".to_owned()),
            ("cs4", techniques),
            ("cs4Label", "mitreTechnique".to_owned()),
        ]);
    }
    ext.push(("msg", a.message.clone()));
    let ext: Vec<String> = ext.into_iter().map(|(k, v)| format!("{k}={}", value(&v))).collect();
    format!(
        "CEF:0|{}|{}|{}|{}|{}|{}|{}",
        header(VENDOR),
        header(PRODUCT),
        header(VERSION),
        header(a.rule_name()),
        header(&a.description),
        (a.risk_score / 10).min(10),
        ext.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::format::tests::sample;

    #[test]
    fn header_fields_escape_pipe_and_backslash_and_flatten_line_breaks() {
        assert_eq!(header(r"a|b\c"), r"a\|b\\c");
        assert_eq!(header("one\ntwo\r"), "one two ");
        assert_eq!(header("x=y"), "x=y");
    }

    #[test]
    fn extension_values_escape_equals_backslash_and_line_breaks_but_not_pipes() {
        assert_eq!(value(r"a=b\c|d"), r"a\=b\\c|d");
        assert_eq!(value("l1\nl2\r"), r"l1\nl2\r");
    }

    #[test]
    fn an_alert_becomes_one_cef_line_with_its_id_and_severity() {
        let line = event(&sample());
        assert!(line.starts_with("CEF:0|nbad|nbad-sensor|"), "{line}");
        assert!(line.contains(r"|scan|Horizontal \| vertical scan = probing\\many|8|"), "{line}");
        assert!(line.contains(&format!("externalId={} ", sample().id)), "{line}");
        assert!(
            line.contains(r#"msg=10.0.0.5 probed 120 ports on 198.51.100.7 in 60 s] "quoted"\nnext"#),
            "{line}"
        );
        assert!(line.contains("src=10.0.0.5 dst=198.51.100.7 dpt=22 proto=TCP"), "{line}");
        assert!(!line.contains('\n'));
        assert!(line.contains("cs3=TA0007 cs3Label=mitreTactic cs4=T1046 cs4Label=mitreTechnique"), "{line}");
    }
}
