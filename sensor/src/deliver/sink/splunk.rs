//! Splunk HTTP Event Collector: `POST <url>/services/collector/event` with
//! `Authorization: Splunk <token>` and the batch as concatenated event objects
//! (`{"time":…,"host":…,"source":…,"sourcetype":…,"index":…,"event":{…}}`).
//!
//! The response's `code` decides (Splunk's documented HEC status codes): 0 = success; 8
//! (internal server error), 9 (server is busy), 18–20 (unhealthy: queues full, ack service
//! unavailable) are retriable; every other code (1–4 token disabled/required/invalid, 5 no
//! data, 6 invalid data format, 7 incorrect index, 10–16 request errors) is permanent. For
//! code 6 HEC reports `invalid-event-number`: the events before it were indexed, that event
//! is dead-lettered and the ones after it are sent again. A body without a code falls back
//! to the HTTP status.

use serde_json::{Value, json};

use super::http::Endpoint;
use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings};
use crate::deliver::format;
use crate::deliver::retry::{self, SendError, SendResult};

/// HEC status codes that mean "try again later".
const RETRIABLE_CODES: [i64; 5] = [8, 9, 18, 19, 20];

/// The Splunk HEC sink.
#[derive(Debug)]
pub(crate) struct SplunkSink {
    endpoint: Endpoint,
    index: String,
    sourcetype: String,
    host: String,
    format: Format,
}

impl SplunkSink {
    pub(crate) fn new(s: &SinkSettings, sensor_id: &str) -> Result<Self, String> {
        let SinkKind::SplunkHec { url, token, index, sourcetype, gzip, tls } = &s.kind else {
            return Err("not a splunk_hec sink".into());
        };
        let url = format!("{}/services/collector/event", url.trim_end_matches('/'));
        Ok(Self {
            endpoint: Endpoint::new(url, "Splunk", token, *gzip, tls, s.timeout)?,
            index: index.clone(),
            sourcetype: sourcetype.clone(),
            host: sensor_id.to_owned(),
            format: s.format,
        })
    }

    fn encode(&self, batch: &[Alert]) -> Vec<u8> {
        let mut body = Vec::with_capacity(batch.len() * 1200);
        for a in batch {
            let mut ev = json!({
                "time": format!("{}.{:06}", a.timestamp_ns / 1_000_000_000, a.timestamp_ns % 1_000_000_000 / 1000),
                "host": self.host,
                "source": "nbad-sensor",
                "sourcetype": self.sourcetype,
                "event": format::json(a, self.format),
            });
            if !self.index.is_empty()
                && let Some(obj) = ev.as_object_mut()
            {
                obj.insert("index".into(), json!(self.index));
            }
            body.extend_from_slice(ev.to_string().as_bytes());
            body.push(b'\n');
        }
        body
    }

    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        let resp = self.endpoint.post("application/json", self.encode(batch)).await?;
        hec_outcome(resp.status, resp.retry_after, &resp.body, batch.len())
    }
}

/// The outcome of a HEC response for a batch of `n` events.
pub(crate) fn hec_outcome(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &str,
    n: usize,
) -> SendResult {
    let doc: Option<Value> = serde_json::from_str(body).ok();
    let Some(code) = doc.as_ref().and_then(|d| d.get("code")).and_then(Value::as_i64) else {
        return if (200..300).contains(&status) {
            Ok(Vec::new())
        } else {
            Err(retry::http_status(status, retry_after, body))
        };
    };
    let text = doc.as_ref().and_then(|d| d.get("text")).and_then(Value::as_str).unwrap_or("");
    let reason = format!("HEC code {code} (HTTP {status}): {text}");
    if code == 0 {
        return Ok(Vec::new());
    }
    if RETRIABLE_CODES.contains(&code) {
        return Err(SendError::Retriable { reason, retry_after });
    }
    let invalid = doc.as_ref().and_then(|d| d.get("invalid-event-number")).and_then(Value::as_u64);
    match invalid.and_then(|i| usize::try_from(i).ok()).filter(|&i| code == 6 && i < n) {
        Some(bad) => {
            let mut rejected = vec![(bad, SendError::permanent(reason))];
            rejected
                .extend((bad + 1..n).map(|i| {
                    (i, SendError::retry("not indexed: an earlier event in the batch was invalid"))
                }));
            Ok(rejected)
        }
        None => Err(SendError::permanent(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_zero_acknowledges_the_batch() {
        assert_eq!(hec_outcome(200, None, r#"{"text":"Success","code":0}"#, 3), Ok(vec![]));
    }

    #[test]
    fn busy_and_unhealthy_codes_are_retriable_and_keep_retry_after() {
        let after = Some(std::time::Duration::from_secs(3));
        let r = hec_outcome(503, after, r#"{"text":"Server is busy","code":9}"#, 1);
        assert!(matches!(r, Err(SendError::Retriable { retry_after, .. }) if retry_after == after), "{r:?}");
        assert!(matches!(
            hec_outcome(503, None, r#"{"text":"queues full","code":18}"#, 1),
            Err(SendError::Retriable { .. })
        ));
    }

    #[test]
    fn token_errors_are_permanent() {
        for (status, code) in [(403, 1), (401, 2), (401, 3), (403, 4), (400, 7)] {
            let body = format!(r#"{{"text":"x","code":{code}}}"#);
            assert!(
                matches!(hec_outcome(status, None, &body, 2), Err(SendError::Permanent { .. })),
                "{code}"
            );
        }
    }

    #[test]
    fn an_invalid_event_dead_letters_it_and_resends_the_ones_after_it() {
        let r =
            hec_outcome(400, None, r#"{"text":"Invalid data format","code":6,"invalid-event-number":1}"#, 3)
                .expect("partial");
        assert!(matches!(r[0], (1, SendError::Permanent { .. })));
        assert!(matches!(r[1], (2, SendError::Retriable { .. })));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_body_without_a_code_falls_back_to_the_status() {
        assert!(matches!(
            hec_outcome(502, None, "<html>bad gateway</html>", 1),
            Err(SendError::Retriable { .. })
        ));
    }
}
