//! A minimal HTTP/1.1 responder for `GET /metrics`, on std's `TcpListener`.
//!
//! Why not a crate: a scrape is one small GET every 15 s or so from one Prometheus server.
//! std covers that in a page, with the limits this sensor wants stated here rather than
//! inherited: one connection at a time on one thread, a request head of at most 8 KiB read
//! within 2 s in all (a client trickling bytes is cut off then, and answered 400), `Connection: close`, no keep-alive, no TLS, no request bodies. tiny_http would
//! add a thread pool and its own buffering for nothing a scraper uses. An HTTP client that
//! holds the connection can delay the next scrape by the timeouts, never the capture: the
//! server has its own thread.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    // Reads get what is left of the head's deadline (`read_head`).
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let (status, body) = match read_head(&mut stream)? {
        Some(head) => respond(&head, &**render),
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

/// Reads up to the blank line ending the head; `None` when it is longer than [`MAX_HEAD`], or
/// the client stops sending first, or the whole head took longer than [`IO_TIMEOUT`]: a client
/// that trickles a byte at a time (slowloris) holds the endpoint for that long at most.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            return Ok(None);
        };
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
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
pub fn respond(head: &str, render: &dyn Fn() -> String) -> (&'static str, String) {
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

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut conn = TcpStream::connect(addr).expect("connects");
        conn.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        // The server may answer and close before a long request is all sent.
        let _ = conn.write_all(request);
        let mut reply = Vec::new();
        let _ = conn.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    }

    #[test]
    fn hostile_clients_get_an_error_and_the_next_scrape_is_served() {
        let server = HttpServer::start("127.0.0.1:0".parse().expect("address"), page()).expect("binds");
        let addr = server.local_addr();
        for (request, status) in [
            (b"GET /../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(), "404"),
            (b"GET /metrics/../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(), "404"),
            (b"GET %2e%2e/metrics HTTP/1.1\r\n\r\n".to_vec(), "404"),
            ([b"GET /metrics HTTP/1.1\r\nX: ".to_vec(), vec![b'a'; 3 * MAX_HEAD]].concat(), "400"),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n".to_vec(), "400"),
        ] {
            let reply = exchange(addr, &request);
            assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{reply}");
        }
        assert!(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200 OK"));
    }

    #[test]
    fn a_client_trickling_its_request_is_cut_off_and_does_not_hold_the_endpoint() {
        let server = HttpServer::start("127.0.0.1:0".parse().expect("address"), page()).expect("binds");
        let addr = server.local_addr();
        let slow = std::thread::spawn(move || {
            let mut conn = TcpStream::connect(addr).expect("connects");
            conn.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
            // One byte every 200 ms: each read is well within the per-read timeout, so only the
            // deadline on the whole head stops it. 100 bytes would take 20 s.
            let request = b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().chain(&[b'z'; 70]);
            let mut sent = 0;
            for byte in request {
                if conn.write_all(&[*byte]).is_err() {
                    break;
                }
                sent += 1;
                let mut reply = Vec::new();
                if conn.read_to_end(&mut reply).is_ok() {
                    return (sent, String::from_utf8_lossy(&reply).into_owned());
                }
                std::thread::sleep(Duration::from_millis(150));
            }
            (sent, String::new())
        });
        // Give the trickler the endpoint first, then scrape behind it.
        std::thread::sleep(Duration::from_millis(300));
        let scrape = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(scrape.starts_with("HTTP/1.1 200 OK"), "{scrape}");
        let (sent, reply) = slow.join().expect("the trickler ends");
        assert!(sent < 100, "the whole trickled request was read ({sent} bytes)");
        assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 400"), "{reply}");
    }
}
