//! Answers the input as the request head a client sent to the metrics endpoint. Never panics;
//! the answer is one of four statuses; only `GET /metrics` (with or without a query) gets the
//! page, so no other path — `/../`, `%2e%2e`, an absolute URI — reaches anything.

use crate::metrics::http;

/// Runs one input.
pub fn run(data: &[u8]) {
    let head = String::from_utf8_lossy(data);
    let (status, body) = http::respond(&head, &|| "page".to_owned());
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let is_metrics = method == Some("GET")
        && target.and_then(|t| t.split('?').next()) == Some("/metrics")
        && version.is_some_and(|v| v.starts_with("HTTP/1."));
    match status {
        "200 OK" => {
            assert!(is_metrics, "the page for {line:?}");
            assert_eq!(body, "page");
        }
        "400 Bad Request" | "404 Not Found" | "405 Method Not Allowed" => {
            assert!(!is_metrics, "{status} for {line:?}");
            assert_ne!(body, "page");
        }
        other => panic!("status {other} for {line:?}"),
    }
}
