//! HTTP plumbing shared by the HTTP sinks (reqwest over rustls: custom CA, client certificate,
//! optional gzip bodies), and the generic sink: one NDJSON POST per batch, any 2xx
//! acknowledges the whole batch.

use std::io::Write as _;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use crate::alert::Alert;
use crate::deliver::config::{Format, SinkKind, SinkSettings, TlsSettings};
use crate::deliver::format;
use crate::deliver::retry::{self, SendError, SendResult};

/// The error and its sources on one line: reqwest's own message alone ("error sending
/// request") does not say whether DNS, TCP or the certificate failed.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A reqwest client with the sink's TLS material and time limit.
pub(crate) fn client(tls: &TlsSettings, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("nbad-sensor/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        for cert in
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{}: {e}", ca.display()))?
        {
            b = b.add_root_certificate(cert);
        }
        b = b.tls_built_in_root_certs(false);
    }
    if let Some((cert, key)) = &tls.client_cert {
        let mut pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        pem.push(b'\n');
        pem.extend(std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?);
        let id =
            reqwest::Identity::from_pem(&pem).map_err(|e| format!("client certificate: {}", chain(&e)))?;
        b = b.identity(id);
    }
    b.build().map_err(|e| chain(&e))
}

/// A response: status, Retry-After, body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// POSTs `body` (gzipped when `gzip`), with `content_type` and an optional `Authorization`.
/// Transport failures (unreachable, refused, TLS, timeout) are retriable.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &'static str,
    auth: Option<&HeaderValue>,
    body: Vec<u8>,
    gzip: bool,
) -> Result<Response, SendError> {
    let mut req = client.post(url).header(CONTENT_TYPE, content_type);
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    let body = if gzip {
        let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
        enc.write_all(&body).map_err(|e| SendError::retry(format!("gzip: {e}")))?;
        req = req.header(CONTENT_ENCODING, "gzip");
        enc.finish().map_err(|e| SendError::retry(format!("gzip: {e}")))?
    } else {
        body
    };
    let resp =
        req.body(body).send().await.map_err(|e| SendError::retry(format!("POST {url}: {}", chain(&e))))?;
    let status = resp.status().as_u16();
    let retry_after = retry::parse_retry_after(resp.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()));
    let body = resp
        .text()
        .await
        .map_err(|e| SendError::retry(format!("POST {url}: reading the response: {}", chain(&e))))?;
    Ok(Response { status, retry_after, body })
}

/// An `Authorization` header value, rejected at build time when it is not a valid header.
pub(crate) fn auth_header(scheme: &str, token: &str) -> Result<Option<HeaderValue>, String> {
    if token.is_empty() {
        return Ok(None);
    }
    let mut v = HeaderValue::from_str(&format!("{scheme} {token}"))
        .map_err(|_| "the token is not a valid HTTP header value".to_owned())?;
    v.set_sensitive(true);
    Ok(Some(v))
}

/// Where an HTTP sink posts: the client, URL, `Authorization` and compression.
#[derive(Debug)]
pub(crate) struct Endpoint {
    client: reqwest::Client,
    url: String,
    auth: Option<HeaderValue>,
    gzip: bool,
}

impl Endpoint {
    /// `auth_scheme` prefixes `token` in the `Authorization` header (none when `token` is "").
    pub(crate) fn new(
        url: String,
        auth_scheme: &str,
        token: &str,
        gzip: bool,
        tls: &TlsSettings,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self { client: client(tls, timeout)?, url, auth: auth_header(auth_scheme, token)?, gzip })
    }

    /// POSTs `body`; see [`post`].
    pub(crate) async fn post(
        &self,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<Response, SendError> {
        post(&self.client, &self.url, content_type, self.auth.as_ref(), body, self.gzip).await
    }
}

/// The generic HTTP sink.
#[derive(Debug)]
pub(crate) struct HttpSink {
    endpoint: Endpoint,
    format: Format,
}

impl HttpSink {
    pub(crate) fn new(s: &SinkSettings) -> Result<Self, String> {
        let SinkKind::Http { url, token, gzip, tls } = &s.kind else { return Err("not an http sink".into()) };
        Ok(Self {
            endpoint: Endpoint::new(url.clone(), "Bearer", token, *gzip, tls, s.timeout)?,
            format: s.format,
        })
    }

    pub(crate) async fn send(&mut self, batch: &[Alert]) -> SendResult {
        let mut body = Vec::with_capacity(batch.len() * 1024);
        for a in batch {
            serde_json::to_writer(&mut body, &format::json(a, self.format))
                .map_err(|e| SendError::permanent(e.to_string()))?;
            body.push(b'\n');
        }
        let resp = self.endpoint.post("application/x-ndjson", body).await?;
        if (200..300).contains(&resp.status) {
            Ok(Vec::new())
        } else {
            Err(retry::http_status(resp.status, resp.retry_after, &resp.body))
        }
    }
}
