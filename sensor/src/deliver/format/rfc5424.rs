//! The RFC 5424 syslog frame, and RFC 6587 octet counting.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [nbad@32473 …] MSG`: PRI is facility × 8 + the
//! alert's syslog severity; HOSTNAME is the sensor id; MSGID the detector; the structured
//! data element `nbad@32473` (32473 is the private enterprise number RFC 5612 reserves for
//! documentation; a deployment may map it) carries the alert's id, score and endpoints so a
//! SIEM can index them without parsing the body. PARAM-VALUE escaping (RFC 5424 §6.3.3): `"`,
//! `\` and `]` are preceded by a backslash. Header fields that are not printable ASCII without
//! spaces, or are too long, are written as the NILVALUE `-`.

use crate::alert::Alert;

/// SD-ID of the alert's structured data.
pub(crate) const SD_ID: &str = "nbad@32473";

/// A PARAM-VALUE, escaped.
pub(crate) fn param_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: printable ASCII without spaces, at most `max` bytes, else `-`.
pub(crate) fn header_field(value: &str, max: usize) -> &str {
    if !value.is_empty() && value.len() <= max && value.bytes().all(|b| (33..=126).contains(&b)) {
        value
    } else {
        "-"
    }
}

/// The alert as one RFC 5424 message with `body` as MSG.
pub(crate) fn message(a: &Alert, facility: u8, app_name: &str, body: &str) -> String {
    let pri = u16::from(facility) * 8 + u16::from(a.severity.syslog());
    let ts = super::rfc3339(a.timestamp_ns);
    let mut sd = format!(
        "[{SD_ID} id=\"{}\" detector=\"{}\" score=\"{}\" severity=\"{}\" host=\"{}\"",
        param_value(&a.id),
        a.rule_name(),
        a.risk_score,
        a.severity.name(),
        a.host
    );
    if let Some(peer) = a.peer {
        sd.push_str(&format!(" peer=\"{peer}\""));
    }
    if let Some(port) = a.port {
        sd.push_str(&format!(" port=\"{port}\""));
    }
    if let Some(inc) = &a.incident {
        sd.push_str(&format!(" incident=\"{}\"", param_value(&inc.id)));
    }
    sd.push(']');
    format!(
        "<{pri}>1 {ts} {} {} - {} {sd} {body}",
        header_field(&a.sensor_id, 255),
        header_field(app_name, 48),
        header_field(a.rule_name(), 32)
    )
}

/// RFC 6587 §3.4.1 octet counting: `LEN SP MSG`.
pub(crate) fn octet_counted(msg: &str) -> Vec<u8> {
    let mut out = format!("{} ", msg.len()).into_bytes();
    out.extend_from_slice(msg.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::format::tests::sample;

    #[test]
    fn param_values_escape_quote_backslash_and_bracket() {
        assert_eq!(param_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(param_value("plain [x"), "plain [x");
    }

    #[test]
    fn header_fields_that_are_not_printable_ascii_become_nil() {
        assert_eq!(header_field("sensor-1", 255), "sensor-1");
        assert_eq!(header_field("has space", 255), "-");
        assert_eq!(header_field("", 48), "-");
        assert_eq!(header_field(&"x".repeat(49), 48), "-");
    }

    #[test]
    fn the_frame_has_pri_version_timestamp_and_structured_data() {
        let a = sample();
        let msg = message(&a, 4, "nbad-sensor", "BODY");
        // facility 4 (auth) * 8 + severity 3 (high: error)
        assert!(
            msg.starts_with("<35>1 2026-01-01T00:00:00.000000Z s1 nbad-sensor - scan [nbad@32473 id=\""),
            "{msg}"
        );
        assert!(
            msg.contains(
                "score=\"87\" severity=\"high\" host=\"10.0.0.5\" peer=\"198.51.100.7\" port=\"22\"] BODY"
            ),
            "{msg}"
        );
    }

    #[test]
    fn octet_counting_prefixes_the_byte_length() {
        assert_eq!(octet_counted("héllo"), b"6 h\xc3\xa9llo".to_vec());
    }
}
