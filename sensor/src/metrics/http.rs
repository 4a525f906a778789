//! A minimal HTTP/1.1 responder for `GET /metrics`, on std's `TcpListener`.
//!
//! Why not a crate: a scrape is one small GET every 15 s or so from one Prometheus server.
//! std covers that in a page, with the limits this sensor wants stated here rather than
//! inherited: one connection at a time on one thread, a request head of at most 8 KiB read
//! within 2 s, `Connection: close`, no keep-alive, no TLS, no request bodies. tiny_http would
//! add a thread pool and its own buffering for nothing a scraper uses. An HTTP client that
//! holds the connection can delay the next scrape by the timeouts, never the capture: the
//! server has its own thread.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Read and write timeout of one connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// The OpenMetrics text format, which prometheus-client writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders the page for one scrape.
pub type Render = Box<dyn Fn() -> String + Send>;

/// The endpoint's thread; dropping it stops the thread and closes the socket.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `listen` and serves `render()` at `/metrics`.
    pub fn start(listen: SocketAddr, render: Render) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .with_context(|| format!("metrics.listen = \"{listen}\": cannot listen there"))?;
        listener.set_nonblocking(true).context("metrics: cannot make the listener non-blocking")?;
        let addr = listener.local_addr().context("metrics: the listener has no address")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("nbad-metrics".into())
            .spawn(move || accept_loop(&listener, &render, &flag))
            .context("cannot start the metrics thread")?;
        Ok(Self { addr, stop, thread: Some(thread) })
    }

    /// The address bound (the port chosen when `listen` asked for port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, render: &Render, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A client that misbehaves gets a closed connection; nothing to log per scrape.
                let _ = serve(stream, render);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("nbad-sensor: error: metrics endpoint: accept failed: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

fn serve(mut stream: TcpStream, render: &Render) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let (status, body) = match read_head(&mut stream)? {
        Some(head) => respond(&head, render),
        None => ("400 Bad Request", "request head too long or cut\n".to_owned()),
    };
    let content_type = if status.starts_with("200") { CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Reads up to the blank line ending the head; `None` when it is longer than [`MAX_HEAD`] or
/// the client stops sending first.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
        }
    }
    Ok(None)
}

/// `(method, path)` of the request line.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    version.starts_with("HTTP/1.").then_some((method, target))
}

/// The status line and body for a request head.
fn respond(head: &str, render: &Render) -> (&'static str, String) {
    match request_line(head) {
        None => ("400 Bad Request", "not an HTTP/1.x request\n".to_owned()),
        Some(("GET", target)) if target.split('?').next() == Some("/metrics") => ("200 OK", render()),
        Some(("GET", _)) => ("404 Not Found", "metrics are at /metrics\n".to_owned()),
        Some(_) => ("405 Method Not Allowed", "only GET is served\n".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Render {
        Box::new(|| "nbad_up 1\n# EOF\n".to_owned())
    }

    #[test]
    fn answers_get_metrics_and_nothing_else() {
        let render = page();
        assert_eq!(respond("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &render).0, "200 OK");
        assert_eq!(respond("GET /metrics?x=1 HTTP/1.0\r\n\r\n", &render).0, "200 OK");
        assert_eq!(respond("GET / HTTP/1.1\r\n\r\n", &render).0, "404 Not Found");
        assert_eq!(respond("POST /metrics HTTP/1.1\r\n\r\n", &render).0, "405 Method Not Allowed");
        assert_eq!(respond("hello\r\n\r\n", &render).0, "400 Bad Request");
    }

    #[test]
    fn serves_a_scrape_over_tcp() {
        let server = HttpServer::start("127.0.0.1:0".parse().expect("address"), page()).expect("binds");
        let mut conn = TcpStream::connect(server.local_addr()).expect("connects");
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("sends");
        let mut reply = String::new();
        conn.read_to_string(&mut reply).expect("reads");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("Content-Type: application/openmetrics-text"), "{reply}");
        assert!(reply.ends_with("nbad_up 1\n# EOF\n"), "{reply}");
    }
}
