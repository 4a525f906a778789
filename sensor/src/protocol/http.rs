//! HTTP/1.x requests and responses, parsed with httparse.
//!
//! A request is HTTP when httparse reads its whole request line (any method
//! token up to [`MAX_METHOD`] bytes, a target, `HTTP/1.0` or `HTTP/1.1`), or
//! when the bytes end inside the request line after a well-known method and a
//! space (a long URL cut by the sampler). Headers are read as far as the bytes
//! go, up to [`MAX_HEADERS`]; httparse keeps a header only once its line is
//! complete, so a Host value cut by the end of the payload is not reported.
//!
//! A response is HTTP when its status line starts `HTTP/1.x` and a three-digit
//! status from 100 to 599 follows. Only the status line's first
//! [`STATUS_HEAD`] bytes are parsed, from a copy whose `HTTP` is put in
//! capitals: httparse reads the version strictly, and some servers write
//! `http/1.1` (a Zeek trace in the corpus does).
//!
//! The HTTP/2 prior-knowledge preface (`PRI * HTTP/2.0`, which httparse
//! refuses for its version) is a request with method `PRI`.
//!
//! Not handled: HTTP/0.9, HTTP/2 and HTTP/3 frames (TLS or QUIC hide them
//! anyway), and a request whose line is cut before the method's space. RTSP
//! and SIP are not HTTP, but an RTSP `OPTIONS` cut before its version reads
//! like one.

use httparse::{EMPTY_HEADER, Request, Response, Status};

use super::{MAX_TEXT, Protocol, ascii_token};

/// Headers read at most; a request with more is still HTTP, its Host is looked
/// for among these.
pub const MAX_HEADERS: usize = 48;
/// Longest method accepted (registered methods have at most 17 characters).
pub const MAX_METHOD: usize = 24;
/// Bytes of a status line parsed (enough for `HTTP/1.1 200 ` and then some).
pub const STATUS_HEAD: usize = 32;

/// The HTTP/2 connection preface a client sends with prior knowledge (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes of the preface that must be present: its request line.
const H2_PREFACE_MIN: usize = 16;

/// Methods that make a request line cut before its version count as HTTP:
/// RFC 9110's, PATCH, and WebDAV's.
const KNOWN_METHODS: &str = "GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK REPORT";

/// `Some` when `payload` starts an HTTP/1.x request or response.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    if !payload.first()?.is_ascii_alphabetic() {
        return None;
    }
    response(payload).or_else(|| request(payload))
}

fn response(payload: &[u8]) -> Option<Protocol> {
    if !payload.get(..5)?.eq_ignore_ascii_case(b"HTTP/") {
        return None;
    }
    let mut line = [0u8; STATUS_HEAD];
    let len = payload.len().min(STATUS_HEAD);
    line[..len].copy_from_slice(&payload[..len]);
    line[..4].make_ascii_uppercase();
    // No header slots: parsing stops after the status line. Its outcome does
    // not matter; the status is set once the line's code has been read.
    let mut headers = [];
    let mut response = Response::new(&mut headers);
    let _outcome = response.parse(&line[..len]);
    let status = response.code.filter(|code| (100..=599).contains(code))?;
    Some(Protocol::HttpResponse { status })
}

fn request(payload: &[u8]) -> Option<Protocol> {
    let preface = payload.len().min(H2_PREFACE.len());
    if preface >= H2_PREFACE_MIN && payload[..preface] == H2_PREFACE[..preface] {
        return Some(Protocol::HttpRequest { method: "PRI".to_owned(), host: None });
    }
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let mut request = Request::new(&mut headers);
    let outcome = request.parse(payload);
    let method = request.method?;
    let line_read = request.version.is_some();
    let line_cut =
        matches!(outcome, Ok(Status::Partial)) && KNOWN_METHODS.split(' ').any(|known| known == method);
    if method.len() > MAX_METHOD || !(line_read || line_cut) {
        return None;
    }
    // Complete or not, the slots filled so far come first; empty names follow.
    let host = request
        .headers
        .iter()
        .take_while(|h| !h.name.is_empty())
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| ascii_token(h.value.trim_ascii(), MAX_TEXT));
    Some(Protocol::HttpRequest { method: method.to_owned(), host })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, host: Option<&str>) -> Option<Protocol> {
        Some(Protocol::HttpRequest { method: method.into(), host: host.map(Into::into) })
    }

    #[test]
    fn request_with_host_among_other_headers() {
        let got = identify(b"POST /api HTTP/1.1\r\nUser-Agent: x\r\nhost:  api.example.org:8080 \r\n\r\n");
        assert_eq!(got, req("POST", Some("api.example.org:8080")));
    }

    #[test]
    fn host_cut_by_the_end_of_the_payload_is_not_reported() {
        assert_eq!(identify(b"GET / HTTP/1.1\r\nHost: www.exam"), req("GET", None));
        assert_eq!(
            identify(b"GET / HTTP/1.1\r\nHost: www.example.org\r\n"),
            req("GET", Some("www.example.org"))
        );
    }

    #[test]
    fn request_line_cut_after_a_known_method_is_http() {
        assert_eq!(identify(b"GET /very/long/url?with=a&query=string"), req("GET", None));
        assert_eq!(identify(b"FROB /very/long/url"), None, "unknown method, no version seen");
        assert_eq!(identify(b"GET"), None, "no space after the method yet");
    }

    #[test]
    fn custom_methods_with_a_version_are_http() {
        assert_eq!(
            identify(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"),
            req("M-SEARCH", Some("239.255.255.250:1900"))
        );
        let long = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA / HTTP/1.1\r\n\r\n";
        assert_eq!(identify(long), None, "method longer than any registered one");
    }

    #[test]
    fn text_that_is_not_http() {
        assert_eq!(identify(b"USER anonymous\r\n"), None);
        assert_eq!(identify(b"INVITE sip:bob@example.org SIP/2.0\r\n"), None);
        assert_eq!(identify(b"HTTP/2 200\r\n"), None);
        assert_eq!(identify(b"HTTP/1.1 700 Nope\r\n"), None);
        assert_eq!(identify(b"HTTP/1.1 20"), None, "status cut short");
    }

    #[test]
    fn responses_give_their_status() {
        assert_eq!(identify(b"HTTP/1.0 404 Not Found\r\n"), Some(Protocol::HttpResponse { status: 404 }));
        assert_eq!(identify(b"HTTP/1.1 101"), Some(Protocol::HttpResponse { status: 101 }));
        assert_eq!(identify(b"Http/1.1 204 No Content\r\n"), Some(Protocol::HttpResponse { status: 204 }));
    }

    #[test]
    fn http2_preface_is_a_pri_request() {
        assert_eq!(identify(H2_PREFACE), req("PRI", None));
        assert_eq!(identify(&H2_PREFACE[..H2_PREFACE_MIN]), req("PRI", None));
        assert_eq!(identify(&H2_PREFACE[..10]), None);
    }
}
