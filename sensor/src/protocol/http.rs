//! HTTP/1.x requests and responses, parsed with httparse, and the HTTP/2
//! prior-knowledge preface.
//!
//! A request is HTTP when httparse reads its whole request line (any method
//! token up to [`MAX_METHOD`] bytes, a target, `HTTP/1.0` or `HTTP/1.1`), or
//! when the bytes end inside the request line after a well-known method and a
//! space (a long URL cut by the sampler). Headers are read as far as the bytes
//! go, up to [`MAX_HEADERS`]; httparse keeps a header only once its line is
//! complete, so a header cut by the end of the payload is not reported. From
//! a request come its method, target length, Host, User-Agent, Content-Type,
//! Content-Length and whether it has a Referer; a `CONNECT` request's
//! authority is its target (a proxy's client asking for a tunnel).
//!
//! A response is HTTP when its status line starts `HTTP/1.x` and a three-digit
//! status from 100 to 599 follows; its Server header is reported. A status
//! line whose `HTTP` is not in capitals (some servers write `http/1.1`; a
//! Zeek trace in the corpus does) is parsed from a copy put in capitals,
//! because httparse reads the version strictly.
//!
//! The HTTP/2 prior-knowledge preface (`PRI * HTTP/2.0`, which httparse
//! refuses for its version) is [`App::Http2`].
//!
//! Strings: the method and Host are printable ASCII without spaces; the
//! User-Agent, Content-Type and Server may hold spaces, and anything else is
//! shown as `?`; all are cut at [`MAX_TEXT`] bytes, and an empty value is
//! reported as absent.
//!
//! Not handled: HTTP/0.9, HTTP/2 and HTTP/3 frames (TLS or QUIC hide them
//! anyway), and a request whose line is cut before the method's space. RTSP
//! and SIP are identified before HTTP ([`super::sip_rtsp`]).

use httparse::{EMPTY_HEADER, Header, Request, Response, Status};

use super::model::{App, Role, Text};
use super::text::{ascii_token, printable_text};
use super::{MAX_TEXT, Protocol};

/// Headers read at most; a message with more is still HTTP, its headers are
/// looked for among these.
pub const MAX_HEADERS: usize = 48;
/// Longest method accepted (registered methods have at most 17 characters).
pub const MAX_METHOD: usize = 24;
/// Bytes of a lowercase-`http` response copied to be put in capitals.
pub const RESPONSE_COPY: usize = 1024;

/// The HTTP/2 connection preface a client sends with prior knowledge (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes of the preface that must be present: its request line.
const H2_PREFACE_MIN: usize = 16;

/// Methods that make a request line cut before its version count as HTTP:
/// RFC 9110's, PATCH, and WebDAV's.
const KNOWN_METHODS: [&str; 17] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "REPORT",
];

/// An HTTP/1.x message's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpInfo {
    /// A request (the client's side).
    Request(HttpRequest),
    /// A response (the server's side).
    Response(HttpResponse),
}

/// What an HTTP request said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method as sent (`GET`, `POST`, `M-SEARCH`, `CONNECT`, ...).
    pub method: Text,
    /// The request target's length in bytes (as far as it was read).
    pub uri_len: usize,
    /// The request target as sent (path and query), cut at [`MAX_TEXT`] bytes, control
    /// characters shown as `?`; `None` when empty.
    pub path: Option<Text>,
    /// The Host header's value (with its port, if any).
    pub host: Option<Text>,
    /// The User-Agent header's value.
    pub user_agent: Option<Text>,
    /// Whether a Referer header is present.
    pub referer: bool,
    /// The Content-Type header's value.
    pub content_type: Option<Text>,
    /// The Content-Length header's value, when it is a number.
    pub content_length: Option<u64>,
    /// For `CONNECT`: the authority asked for (`host:port`).
    pub connect_target: Option<Text>,
}

/// What an HTTP response said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code (100–599).
    pub status: u16,
    /// The Server header's value.
    pub server: Option<Text>,
    /// The Content-Type header's value.
    pub content_type: Option<Text>,
    /// The file name a Content-Disposition header gives, if any.
    pub filename: Option<Text>,
}

/// `Some` when `payload` starts an HTTP/1.x request or response or the HTTP/2 preface.
pub(super) fn identify(payload: &[u8]) -> Option<Protocol> {
    if !payload.first()?.is_ascii_alphabetic() {
        return None;
    }
    if payload.get(..5)?.eq_ignore_ascii_case(b"HTTP/") {
        return response(payload);
    }
    request(payload)
}

fn response(payload: &[u8]) -> Option<Protocol> {
    let copy;
    let bytes = if payload.starts_with(b"HTTP/") {
        payload
    } else {
        let mut head = payload[..payload.len().min(RESPONSE_COPY)].to_vec();
        head[..4].make_ascii_uppercase();
        copy = head;
        &copy[..]
    };
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let mut response = Response::new(&mut headers);
    // Its outcome does not matter: the status is set once the line's code
    // has been read, and the headers read so far are in their slots.
    let _outcome = response.parse(bytes);
    let status = response.code.filter(|code| (100..=599).contains(code))?;
    let server = header(response.headers, "server").filter(|v| !v.is_empty()).map(printable_text);
    let content_type = header(response.headers, "content-type").filter(|v| !v.is_empty()).map(printable_text);
    let filename = header(response.headers, "content-disposition").and_then(disposition_filename);
    let info = HttpInfo::Response(HttpResponse { status, server, content_type, filename });
    Some(Protocol::new(App::Http(Box::new(info)), Role::Server))
}

fn request(payload: &[u8]) -> Option<Protocol> {
    let preface = payload.len().min(H2_PREFACE.len());
    if preface >= H2_PREFACE_MIN && payload[..preface] == H2_PREFACE[..preface] {
        return Some(Protocol::new(App::Http2, Role::Client));
    }
    let mut headers = [EMPTY_HEADER; MAX_HEADERS];
    let mut request = Request::new(&mut headers);
    let outcome = request.parse(payload);
    let method = request.method?;
    let line_read = request.version.is_some();
    let line_cut = matches!(outcome, Ok(Status::Partial)) && KNOWN_METHODS.contains(&method);
    if method.len() > MAX_METHOD || !(line_read || line_cut) {
        return None;
    }
    let path = request.path.unwrap_or("");
    let headers = &*request.headers;
    let content_length = header(headers, "content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    let info = HttpRequest {
        method: ascii_token(method.as_bytes(), MAX_METHOD)?,
        uri_len: path.len(),
        path: (!path.is_empty()).then(|| printable_text(path.as_bytes())),
        host: header(headers, "host").and_then(|v| ascii_token(v, MAX_TEXT)),
        user_agent: header(headers, "user-agent").filter(|v| !v.is_empty()).map(printable_text),
        referer: header(headers, "referer").is_some(),
        content_type: header(headers, "content-type").filter(|v| !v.is_empty()).map(printable_text),
        content_length,
        connect_target: if method == "CONNECT" { ascii_token(path.as_bytes(), MAX_TEXT) } else { None },
    };
    Some(Protocol::new(App::Http(Box::new(HttpInfo::Request(info))), Role::Client))
}

/// The `filename=` parameter of a Content-Disposition value, unquoted.
fn disposition_filename(value: &[u8]) -> Option<Text> {
    let at = value.windows(9).position(|w| w.eq_ignore_ascii_case(b"filename="))? + 9;
    let rest = &value[at..];
    let name = match rest.strip_prefix(b"\"") {
        Some(quoted) => &quoted[..quoted.iter().position(|&b| b == b'"').unwrap_or(quoted.len())],
        None => &rest[..rest.iter().position(|&b| b == b';').unwrap_or(rest.len())],
    };
    let name = name.trim_ascii();
    (!name.is_empty()).then(|| printable_text(name))
}

/// The trimmed value of the first header called `name` among those read.
fn header<'a>(headers: &[Header<'a>], name: &str) -> Option<&'a [u8]> {
    // Complete or not, the slots filled so far come first; empty names follow.
    headers
        .iter()
        .take_while(|h| !h.name.is_empty())
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(payload: &[u8]) -> Option<HttpRequest> {
        let found = identify(payload)?;
        assert_eq!(found.role, Role::Client);
        match found.app {
            App::Http(info) => match *info {
                HttpInfo::Request(r) => Some(r),
                HttpInfo::Response(r) => panic!("a response: {r:?}"),
            },
            other => panic!("not HTTP/1.x: {other:?}"),
        }
    }

    fn resp(payload: &[u8]) -> Option<HttpResponse> {
        let found = identify(payload)?;
        assert_eq!(found.role, Role::Server);
        match found.app {
            App::Http(info) => match *info {
                HttpInfo::Response(r) => Some(r),
                HttpInfo::Request(r) => panic!("a request: {r:?}"),
            },
            other => panic!("not HTTP/1.x: {other:?}"),
        }
    }

    #[test]
    fn request_with_its_headers() {
        let got = req(b"POST /api/v1 HTTP/1.1\r\nUser-Agent: curl/8.5.0 (x86_64)\r\nhost:  api.example.org:8080 \r\nReferer: https://a/\r\nContent-Type: application/json\r\nContent-Length: 42\r\n\r\n")
            .expect("HTTP");
        assert_eq!(&*got.method, "POST");
        assert_eq!(got.uri_len, 7);
        assert_eq!(got.path.as_deref(), Some("/api/v1"));
        assert_eq!(got.host.as_deref(), Some("api.example.org:8080"));
        assert_eq!(got.user_agent.as_deref(), Some("curl/8.5.0 (x86_64)"));
        assert!(got.referer);
        assert_eq!(got.content_type.as_deref(), Some("application/json"));
        assert_eq!(got.content_length, Some(42));
        assert_eq!(got.connect_target, None);
    }

    #[test]
    fn empty_header_values_are_absent() {
        let got = req(b"GET / HTTP/1.1\r\nUser-Agent: \r\nContent-Type:\r\n\r\n").expect("HTTP");
        assert_eq!((got.user_agent, got.content_type), (None, None));
    }

    #[test]
    fn connect_reports_its_target() {
        let got =
            req(b"CONNECT www.example.org:443 HTTP/1.1\r\nHost: www.example.org:443\r\n\r\n").expect("HTTP");
        assert_eq!(&*got.method, "CONNECT");
        assert_eq!(got.connect_target.as_deref(), Some("www.example.org:443"));
    }

    #[test]
    fn header_cut_by_the_end_of_the_payload_is_not_reported() {
        assert_eq!(req(b"GET / HTTP/1.1\r\nHost: www.exam").and_then(|r| r.host), None);
        let got = req(b"GET / HTTP/1.1\r\nHost: www.example.org\r\n").and_then(|r| r.host);
        assert_eq!(got.as_deref(), Some("www.example.org"));
    }

    #[test]
    fn request_line_cut_after_a_known_method_is_http() {
        assert_eq!(req(b"GET /very/long/url?with=a&query=string").map(|r| r.method), Some("GET".into()));
        assert_eq!(identify(b"FROB /very/long/url"), None, "unknown method, no version seen");
        assert_eq!(identify(b"GET"), None, "no space after the method yet");
    }

    #[test]
    fn custom_methods_with_a_version_are_http() {
        let got = req(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n").expect("HTTP");
        assert_eq!((&*got.method, got.host.as_deref()), ("M-SEARCH", Some("239.255.255.250:1900")));
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
    fn responses_give_their_status_and_server() {
        let got = resp(b"HTTP/1.0 404 Not Found\r\nServer: nginx/1.18.0 (Ubuntu)\r\n\r\n").expect("HTTP");
        assert_eq!((got.status, got.server.as_deref()), (404, Some("nginx/1.18.0 (Ubuntu)")));
        assert_eq!(resp(b"HTTP/1.1 101").map(|r| r.status), Some(101));
        let got = resp(b"Http/1.1 204 No Content\r\nServer: x\x01y\r\n\r\n").expect("HTTP");
        assert_eq!((got.status, got.server.as_deref()), (204, None), "a control byte fails the header");
    }

    #[test]
    fn responses_give_their_content_type_and_file_name() {
        let got = resp(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Disposition: inline; filename=file.exe\r\n\r\nMZ")
            .expect("HTTP");
        assert_eq!(got.content_type.as_deref(), Some("application/octet-stream"));
        assert_eq!(got.filename.as_deref(), Some("file.exe"));
        let got =
            resp(b"HTTP/1.1 200 OK\r\nContent-Disposition: attachment; filename=\"a b.pdf\"; size=3\r\n\r\n")
                .expect("HTTP");
        assert_eq!(got.filename.as_deref(), Some("a b.pdf"));
        assert_eq!(
            resp(b"HTTP/1.1 200 OK\r\nContent-Disposition: inline\r\n\r\n").expect("present").filename,
            None
        );
    }

    #[test]
    fn http2_preface_is_http2() {
        let h2 = Some(Protocol::new(App::Http2, Role::Client));
        assert_eq!(identify(H2_PREFACE), h2);
        assert_eq!(identify(&H2_PREFACE[..H2_PREFACE_MIN]), h2);
        assert_eq!(identify(&H2_PREFACE[..10]), None);
    }
}
