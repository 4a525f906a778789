//! Elasticsearch / OpenSearch `_bulk`: one `create` action per alert with the alert's
//! `event.id` as `_id`, so a re-sent alert cannot be indexed twice.
//!
//! Per-item status decides: 200/201 acknowledged; 409 (version conflict: the document already
//! exists) acknowledged, it was delivered before; 429 and 5xx retriable (only those items are
//! sent again); any other 4xx (a mapping error, say) dead-lettered with the item's error. A
//! request-level failure is classified by its HTTP status.

use serde_json::{Value, json};

use super::http::Endpoint;
use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings};
use crate::deliver::format;
use crate::deliver::retry::{self, SendError, SendResult};

/// The `_bulk` sink.
#[derive(Debug)]
pub(crate) struct ElasticSink {
    endpoint: Endpoint,
    index: String,
    format: Format,
}

impl ElasticSink {
    pub(crate) fn new(s: &SinkSettings) -> Result<Self, String> {
        let SinkKind::Elasticsearch { url, index, token, gzip, tls } = &s.kind else {
            return Err("not an elasticsearch sink".into());
        };
        let url = format!("{}/_bulk", url.trim_end_matches('/'));
        let endpoint = Endpoint::new(url, "ApiKey", token, *gzip, tls, s.timeout)?;
        Ok(Self { endpoint, index: index.clone(), format: s.format })
    }

    fn encode(&self, batch: &[Alert]) -> Vec<u8> {
        let mut body = Vec::with_capacity(batch.len() * 1200);
        for a in batch {
            let action = json!({ "create": { "_index": self.index, "_id": a.id } });
            body.extend_from_slice(action.to_string().as_bytes());
            body.push(b'\n');
            body.extend_from_slice(format::json(a, self.format).to_string().as_bytes());
            body.push(b'\n');
        }
        body
    }

    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        let resp = self.endpoint.post("application/x-ndjson", self.encode(batch)).await?;
        if !(200..300).contains(&resp.status) {
            return Err(retry::http_status(resp.status, resp.retry_after, &resp.body));
        }
        bulk_outcome(&resp.body, batch.len())
    }
}

/// The per-item outcome of a 2xx `_bulk` response for a batch of `n` documents.
pub(crate) fn bulk_outcome(body: &str, n: usize) -> SendResult {
    let doc: Value = serde_json::from_str(body).map_err(|e| {
        SendError::retry(format!("_bulk response is not JSON ({e}): {}", retry::excerpt(body)))
    })?;
    if doc.get("errors").and_then(Value::as_bool) == Some(false) {
        return Ok(Vec::new());
    }
    let items = doc.get("items").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if items.len() != n {
        return Err(SendError::retry(format!("_bulk answered {} items for {n} documents", items.len())));
    }
    let mut rejected = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let op = item.as_object().and_then(|o| o.values().next()).unwrap_or(&Value::Null);
        let status = op.get("status").and_then(Value::as_u64).unwrap_or(0);
        let reason = || {
            let err = op.get("error");
            let kind = err.and_then(|e| e.get("type")).and_then(Value::as_str).unwrap_or("");
            let why = err.and_then(|e| e.get("reason")).and_then(Value::as_str).unwrap_or("");
            format!("_bulk item status {status}: {kind}: {why}")
        };
        match status {
            200 | 201 | 409 => {}
            429 | 500..=599 | 0 => rejected.push((i, SendError::retry(reason()))),
            _ => rejected.push((i, SendError::permanent(reason()))),
        }
    }
    Ok(rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(status: u16) -> String {
        format!(r#"{{"create":{{"_id":"x","status":{status},"error":{{"type":"t","reason":"r"}}}}}}"#)
    }

    #[test]
    fn created_and_conflict_items_are_acknowledged() {
        let body = format!(r#"{{"errors":true,"items":[{},{}]}}"#, item(201), item(409));
        assert_eq!(bulk_outcome(&body, 2), Ok(vec![]));
        assert_eq!(bulk_outcome(r#"{"errors":false,"items":[]}"#, 5), Ok(vec![]));
    }

    #[test]
    fn throttled_and_server_errors_retry_only_those_items_and_other_4xx_are_permanent() {
        let body =
            format!(r#"{{"errors":true,"items":[{},{},{},{}]}}"#, item(201), item(429), item(503), item(400));
        let r = bulk_outcome(&body, 4).expect("per item");
        assert!(matches!(r[0], (1, SendError::Retriable { .. })));
        assert!(matches!(r[1], (2, SendError::Retriable { .. })));
        assert!(matches!(&r[2], (3, SendError::Permanent { reason }) if reason.contains("400")));
    }

    #[test]
    fn a_response_that_does_not_match_the_batch_is_retried_whole() {
        assert!(bulk_outcome(r#"{"errors":true,"items":[]}"#, 2).is_err());
        assert!(bulk_outcome("not json", 2).is_err());
    }
}
