//! A Splunk HTTP Event Collector for contract tests, built from Splunk's documentation of
//! `POST /services/collector/event`: `Authorization: Splunk <token>`, a body of concatenated
//! JSON event objects each with an `event` field, and JSON responses `{"text":…,"code":…}`:
//! 0 Success (200), 2 Token is required (401), 3 Invalid authorization (401), 4 Invalid token
//! (403), 5 No data (400), 6 Invalid data format (400, with `invalid-event-number`), 9 Server
//! is busy (503), 12 Event field is required (400), 13 Event field cannot be blank (400).
//!
//! Bodies with `Content-Encoding: gzip` are decompressed, as HEC does.
//!
//! Knobs: answer the first `busy_first` requests with code 9, and sleep `delay` before
//! answering each request (a slow collector, for the kill tests).

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

/// What the collector has seen.
#[derive(Debug, Default)]
pub struct HecState {
    /// `event.id` of every event accepted (code 0), duplicates collapsed.
    pub accepted: Mutex<BTreeSet<String>>,
    /// Events accepted, duplicates included.
    pub accepted_events: AtomicU32,
    /// Requests answered.
    pub requests: AtomicU32,
    /// Requests answered with something other than code 0.
    pub refused: AtomicU32,
    stop: AtomicBool,
}

/// The collector, listening until dropped.
#[derive(Debug)]
pub struct Hec {
    /// Its port.
    pub port: u16,
    /// What it has seen.
    pub state: Arc<HecState>,
}

impl Drop for Hec {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn respond(
    stream: &mut TcpStream,
    status: u16,
    code: i64,
    text: &str,
    extra: Option<(&str, u64)>,
) -> std::io::Result<()> {
    let mut body = json!({ "text": text, "code": code });
    if let (Some((k, v)), Some(obj)) = (extra, body.as_object_mut()) {
        obj.insert(k.to_owned(), json!(v));
    }
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn handle(
    mut stream: TcpStream,
    token: &str,
    busy_first: u32,
    delay: Duration,
    state: &HecState,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let (mut len, mut auth, mut gzip) = (0usize, None::<String>, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "authorization" => auth = Some(v.trim().to_owned()),
                    "content-encoding" => gzip = v.trim().eq_ignore_ascii_case("gzip"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        if gzip {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain)?;
            body = plain;
        }
        thread::sleep(delay);
        let n = state.requests.fetch_add(1, Ordering::SeqCst);
        let refuse = |s: &mut TcpStream, status, code, text| {
            state.refused.fetch_add(1, Ordering::SeqCst);
            respond(s, status, code, text, None)
        };
        if !request_line.starts_with("POST /services/collector/event ") {
            refuse(&mut stream, 404, 404, "The requested URL was not found on this server.")?;
            continue;
        }
        match auth.as_deref().map(|a| a.split_once(' ')) {
            None => {
                refuse(&mut stream, 401, 2, "Token is required")?;
                continue;
            }
            Some(Some(("Splunk", t))) if t == token => {}
            Some(Some(("Splunk", _))) => {
                refuse(&mut stream, 403, 4, "Invalid token")?;
                continue;
            }
            Some(_) => {
                refuse(&mut stream, 401, 3, "Invalid authorization")?;
                continue;
            }
        }
        if n < busy_first {
            refuse(&mut stream, 503, 9, "Server is busy")?;
            continue;
        }
        let text = String::from_utf8_lossy(&body);
        if text.trim().is_empty() {
            refuse(&mut stream, 400, 5, "No data")?;
            continue;
        }
        let mut ids = Vec::new();
        let mut problem = None;
        for (i, item) in serde_json::Deserializer::from_str(&text).into_iter::<Value>().enumerate() {
            let i = i as u64;
            match item {
                Err(_) => problem = Some((6, "Invalid data format", i)),
                Ok(ev) => match ev.get("event") {
                    None => problem = Some((12, "Event field is required", i)),
                    Some(Value::String(s)) if s.is_empty() => {
                        problem = Some((13, "Event field cannot be blank", i))
                    }
                    Some(e) => ids.push(
                        e.pointer("/event/id")
                            .or_else(|| e.pointer("/finding_info/uid"))
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    ),
                },
            }
            if problem.is_some() {
                break;
            }
        }
        // Events before an invalid one are indexed, as Splunk does.
        state.accepted_events.fetch_add(ids.len() as u32, Ordering::SeqCst);
        state.accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(ids);
        match problem {
            Some((code, text, i)) => {
                state.refused.fetch_add(1, Ordering::SeqCst);
                respond(&mut stream, 400, code, text, Some(("invalid-event-number", i)))?;
            }
            None => respond(&mut stream, 200, 0, "Success", None)?,
        }
    }
}

impl Hec {
    /// Starts the collector on a free port, accepting `token`.
    pub fn start(token: &str, busy_first: u32, delay: Duration) -> Result<Self> {
        Self::listen(TcpListener::bind("127.0.0.1:0")?, token, busy_first, delay)
    }

    /// Starts the collector on `port`, answering at once.
    pub fn start_on(port: u16, token: &str) -> Result<Self> {
        Self::listen(TcpListener::bind(("127.0.0.1", port))?, token, 0, Duration::ZERO)
    }

    fn listen(listener: TcpListener, token: &str, busy_first: u32, delay: Duration) -> Result<Self> {
        let port = listener.local_addr()?.port();
        let state = Arc::new(HecState::default());
        let (st, token) = (Arc::clone(&state), token.to_owned());
        thread::spawn(move || {
            for stream in listener.incoming().take(10_000) {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (st, token) = (Arc::clone(&st), token.clone());
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                    let _ = handle(stream, &token, busy_first, delay, &st);
                });
            }
        });
        Ok(Self { port, state })
    }

    /// The URL the sink is configured with.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The ids accepted so far.
    pub fn accepted(&self) -> BTreeSet<String> {
        self.state.accepted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
