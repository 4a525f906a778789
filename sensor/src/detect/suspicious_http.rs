//! `suspicious_http`: HTTP requests whose context says command and control rather than browsing.
//!
//! Two rules, each naming its factors in the evidence:
//!
//! - **context**: every request that opens a connection is scored, like
//!   [`super::suspicious_tls`] scores hellos:
//!
//!   | factor | weight |
//!   |---|---:|
//!   | the port is not registered for HTTP | 1.0 |
//!   | the server is outside | 1.0 |
//!   | the service (server, port) is new to the organisation's inventory | 0.5 |
//!   | a numeric Host, or none | 1.5 |
//!   | no User-Agent | 1.0 |
//!   | an implausible User-Agent (shorter than 8 characters, no product token, an Internet Explorer older than 8) | 1.0 |
//!   | a POST or PUT (data sent) | 0.5 |
//!   | a POST or PUT whose body (after the headers, in the same segment) has at least `min_body_entropy` bits per byte | 1.0 |
//!
//!   A request scoring `min_score` (4.0) or more alerts. A browser to a site scores 1, an
//!   organisation's own web service on an odd port 1.5–2.5 until the inventory learned it, a
//!   device inside polled by numeric address 2.5, an application fetching by numeric address
//!   without a User-Agent on port 80 3.5; a POST of encrypted data to a numeric address on an
//!   odd port outside 5 and more. The new-service factor counts only once the inventory has
//!   learned for `protocol_mismatch.inventory_learn_s`: on a sensor's first day every service
//!   is new.
//! - **c2_series**: a host sends `series_min_posts` (3) or more POSTs with high-entropy bodies to
//!   one destination (a Host name, else the address) that was new to it when the series began,
//!   within `series_window_s` (30 min). No timing regularity is needed: short-lived implants
//!   check in a handful of times before they sleep or are sent elsewhere.
//! - **executable_download**: the first response of a connection carries a Windows executable (`MZ` and `PE` in its body), and the request or the response
//!   hides it: the URL is a script or carries a query (`/load.php?e=1`, the way exploit kits
//!   and droppers hand out payloads), the Host is numeric, or the declared type or file name
//!   does not say executable (`image/gif`, `text/html`, `invoice.pdf`). A static `.exe` or
//!   `.msi` from a named site (a software update) stays quiet. Confidence 0.75.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::host::{FlowRef, Map};
use super::name_score::is_ip_literal;
use super::suspicious_tls::Factor;
use super::{Candidate, PointCtx};
use crate::alert::{Detector, LearningState};
use crate::protocol::http::{HttpRequest, HttpResponse};
use crate::protocol::{Transport, registry};

const DESCRIPTION: &str =
    "HTTP requests whose context (port, peer, Host, User-Agent, body) looks like command and control.";

/// Destinations followed per host for `c2_series` at most.
pub const MAX_SERIES: usize = 64;

/// `[detection.suspicious_http]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Detector on.
    pub enabled: bool,
    /// Score (sum of the factors' weights) from which a request alerts.
    pub min_score: f64,
    /// A body with at least this entropy (bits per byte) is high-entropy: encrypted or compressed.
    pub min_body_entropy: f64,
    /// POSTs with high-entropy bodies to one new destination that make a series.
    pub series_min_posts: u64,
    /// The series' window, seconds.
    pub series_window_s: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            min_score: 4.0,
            min_body_entropy: 6.0,
            series_min_posts: 3,
            series_window_s: 1_800,
        }
    }
}

/// One request as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Client and server.
    pub flow: FlowRef,
    /// The request.
    pub req: &'a HttpRequest,
    /// Its body's entropy, where measured.
    pub body_entropy: Option<f32>,
    /// The service (server, port) is new to the inventory.
    pub new_service: bool,
}

/// Whether a User-Agent is implausible for a real client.
#[must_use]
pub fn implausible_agent(ua: &str) -> bool {
    let old_ie = ua
        .find("MSIE ")
        .and_then(|at| ua[at + 5..].split(['.', ';']).next()?.parse::<u32>().ok())
        .is_some_and(|v| v < 8);
    ua.len() < 8 || !ua.contains('/') || old_ie
}

/// A Host header's host without its port: `[2001:db8::1]:8080` → `2001:db8::1`,
/// `203.0.113.9:7080` → `203.0.113.9`, `example.org` as it is.
#[must_use]
pub fn host_part(h: &str) -> &str {
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match h.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => h,
    }
}

fn high_entropy_body(r: &Request<'_>, min: f64) -> bool {
    matches!(&*r.req.method, "POST" | "PUT") && r.body_entropy.is_some_and(|e| f64::from(e) >= min)
}

/// The factors of one request.
#[must_use]
pub fn factors(r: &Request<'_>, server_outside: bool, min_body_entropy: f64) -> Vec<Factor> {
    let mut f = Vec::new();
    let mut add = |name, weight, value| f.push(Factor { name, weight, value });
    let (server, port) = r.flow.b;
    let reg = registry::global().protocols(port, Transport::Tcp);
    if !reg.contains(&"http") {
        add("unregistered_port", 1.0, json!(port));
    }
    if server_outside {
        add("outside_server", 1.0, json!(server));
    }
    if r.new_service {
        add("new_service", 0.5, json!(format!("{server}:{port}")));
    }
    match r.req.host.as_deref() {
        None => add("no_host", 1.5, json!(null)),
        Some(h) if is_ip_literal(host_part(h)) => add("numeric_host", 1.5, json!(h)),
        Some(_) => {}
    }
    match r.req.user_agent.as_deref() {
        None => add("no_user_agent", 1.0, json!(null)),
        Some(ua) if implausible_agent(ua) => add("implausible_user_agent", 1.0, json!(ua)),
        Some(_) => {}
    }
    if matches!(&*r.req.method, "POST" | "PUT") {
        add("sends_data", 0.5, json!(&*r.req.method));
    }
    if high_entropy_body(r, min_body_entropy) {
        add("high_entropy_body", 1.0, json!(r.body_entropy));
    }
    f
}

/// One destination's POSTs.
#[derive(Debug, Clone)]
struct Series {
    new: bool,
    posts: Vec<u64>,
    flows: Vec<FlowRef>,
}

/// Each host's series of high-entropy POSTs per destination.
#[derive(Debug, Default)]
pub struct C2Series {
    by_host: Map<(IpAddr, String), Series>,
    /// Destinations forgotten because a host followed too many.
    pub dropped: u64,
}

impl C2Series {
    /// Counts a high-entropy POST from `host` to `dest` at `ts_ns` (`new`: the destination was
    /// new to the host when its series began); returns the series' POST times within the
    /// window when they make a series.
    pub fn post(
        &mut self,
        host: IpAddr,
        dest: &str,
        new: bool,
        flow: FlowRef,
        ts_ns: u64,
        s: &Settings,
    ) -> Option<Vec<u64>> {
        let window = u64::try_from(s.series_window_s).unwrap_or(0).saturating_mul(1_000_000_000);
        let key = (host, dest.to_owned());
        if !self.by_host.contains_key(&key) {
            let count = self.by_host.keys().filter(|(h, _)| *h == host).count();
            if count >= MAX_SERIES {
                self.dropped += 1;
                return None;
            }
        }
        let e =
            self.by_host.entry(key).or_insert_with(|| Series { new, posts: Vec::new(), flows: Vec::new() });
        e.posts.retain(|t| ts_ns.saturating_sub(*t) <= window);
        e.posts.push(ts_ns);
        if e.flows.len() < 8 && !e.flows.contains(&flow) {
            e.flows.push(flow);
        }
        (e.new && e.posts.len() as u64 >= s.series_min_posts).then(|| e.posts.clone())
    }

    /// Forgets series with no POST within the window of `now_ns`.
    pub fn expire(&mut self, now_ns: u64, s: &Settings) {
        let window = u64::try_from(s.series_window_s).unwrap_or(0).saturating_mul(1_000_000_000);
        self.by_host.retain(|_, e| e.posts.last().is_some_and(|t| now_ns.saturating_sub(*t) <= window));
    }
}

/// Judges one request by context.
#[must_use]
pub fn judge(r: &Request<'_>, host: IpAddr, server_outside: bool, ctx: &PointCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.suspicious_http;
    if !s.enabled {
        return None;
    }
    let factors = factors(r, server_outside, s.min_body_entropy);
    let score: f64 = factors.iter().map(|f| f.weight).sum();
    if score < s.min_score {
        return None;
    }
    let mut cand = Candidate::point(
        Detector::SuspiciousHttp,
        DESCRIPTION,
        ctx,
        host,
        "context_score",
        score,
        s.min_score,
    );
    fill(&mut cand, r, host);
    cand.strength = ((score - s.min_score) / 3.0).clamp(0.2, 1.0);
    cand.confidence = (0.4 + 0.08 * score).min(0.8);
    let listed: serde_json::Map<String, serde_json::Value> = factors
        .iter()
        .map(|f| (f.name.to_owned(), json!({ "weight": f.weight, "value": f.value })))
        .collect();
    cand.evidence.details.insert("rule".into(), json!("context"));
    cand.evidence.details.insert("factors".into(), serde_json::Value::Object(listed));
    let names: Vec<&str> = factors.iter().map(|f| f.name).collect();
    cand.message = format!(
        "{} → {}:{}: HTTP {} scoring {score:.1} (threshold {:.1}): {}",
        r.flow.a.0,
        r.flow.b.0,
        r.flow.b.1,
        r.req.method,
        s.min_score,
        names.join(", ")
    );
    Some(cand)
}

/// A `c2_series` finding for `posts` (times) to `dest`.
#[must_use]
pub fn series_finding(
    r: &Request<'_>,
    host: IpAddr,
    dest: &str,
    posts: &[u64],
    ctx: &PointCtx<'_>,
) -> Candidate {
    let s = &ctx.settings.suspicious_http;
    let n = posts.len() as f64;
    let mut cand = Candidate::point(
        Detector::SuspiciousHttp,
        DESCRIPTION,
        ctx,
        host,
        "high_entropy_posts",
        n,
        s.series_min_posts as f64,
    );
    fill(&mut cand, r, host);
    cand.strength = super::strength(n, s.series_min_posts as f64).max(0.3);
    cand.confidence = 0.7;
    if let Some(first) = posts.first() {
        cand.evidence.window_start_ns = *first;
    }
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("c2_series"));
    d.insert("destination".into(), json!(dest));
    d.insert("posts".into(), json!(posts.len()));
    d.insert("post_times".into(), json!(posts.iter().map(|t| crate::alert::rfc3339(*t)).collect::<Vec<_>>()));
    d.insert("body_entropy".into(), json!(r.body_entropy));
    cand.message = format!(
        "{host} sent {} POSTs with high-entropy bodies to {dest}, new to it, within {} s (rule c2_series)",
        posts.len(),
        s.series_window_s
    );
    cand
}

/// Extensions of server-side scripts: a URL ending in one runs code to choose its answer.
const SCRIPT_EXTENSIONS: [&str; 9] = ["php", "asp", "aspx", "jsp", "cgi", "pl", "py", "cfm", "do"];
/// File-name extensions that say "executable".
const EXECUTABLE_EXTENSIONS: [&str; 7] = ["exe", "dll", "msi", "scr", "com", "sys", "cpl"];

/// The last path segment's extension (lowercase), ignoring the query.
fn extension(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let last = path.rsplit('/').next()?;
    let (_, ext) = last.rsplit_once('.')?;
    (!ext.is_empty() && ext.len() <= 5).then(|| ext.to_ascii_lowercase())
}

/// Why an executable served in answer to `req` looks hidden; empty when it does not.
#[must_use]
pub fn hidden_executable(req: Option<&HttpRequest>, resp: &HttpResponse) -> Vec<Factor> {
    let mut f = Vec::new();
    let mut add = |name, weight, value| f.push(Factor { name, weight, value });
    if let Some(req) = req {
        let path = req.path.as_deref().unwrap_or("/");
        let ext = extension(path);
        if ext.as_deref().is_some_and(|e| SCRIPT_EXTENSIONS.contains(&e)) || path.contains('?') {
            add("script_url", 1.0, json!(path));
        }
        if req.host.as_deref().is_some_and(|h| is_ip_literal(host_part(h))) {
            add("numeric_host", 1.0, json!(req.host.as_deref()));
        }
        if ext
            .as_deref()
            .is_some_and(|e| !EXECUTABLE_EXTENSIONS.contains(&e) && !SCRIPT_EXTENSIONS.contains(&e))
            && !path.contains('?')
        {
            add("url_not_executable", 1.0, json!(path));
        }
    }
    let declared = resp.content_type.as_deref().map(str::to_ascii_lowercase);
    if let Some(t) = &declared
        && (t.starts_with("text/")
            || t.starts_with("image/")
            || t.starts_with("audio/")
            || t.starts_with("video/"))
    {
        add("content_type_not_executable", 1.0, json!(t));
    }
    if let Some(name) = resp.filename.as_deref()
        && extension(name).is_none_or(|e| !EXECUTABLE_EXTENSIONS.contains(&e.as_str()))
    {
        add("file_name_not_executable", 1.0, json!(name));
    }
    f
}

/// An `executable_download` finding: `resp` on `flow` (client `a`, server `b`) carried an
/// executable, hidden as `factors` say.
#[must_use]
pub fn executable_finding(
    flow: FlowRef,
    req: Option<&HttpRequest>,
    resp: &HttpResponse,
    factors: &[Factor],
    ctx: &PointCtx<'_>,
) -> Option<Candidate> {
    let s = &ctx.settings.suspicious_http;
    if !s.enabled || factors.is_empty() {
        return None;
    }
    let host = flow.a.0;
    let n = factors.len() as f64;
    let mut cand =
        Candidate::point(Detector::SuspiciousHttp, DESCRIPTION, ctx, host, "hiding_factors", n, 1.0);
    cand.peer = Some(flow.b.0);
    cand.port = Some(flow.b.1);
    cand.transport = Some("tcp");
    cand.flow = Some(flow);
    cand.strength = (0.4 + 0.2 * n).min(1.0);
    cand.confidence = 0.75;
    cand.evidence.learning_state = LearningState::NotApplicable;
    cand.evidence.community_ids.push(flow.community_id());
    let listed: serde_json::Map<String, serde_json::Value> = factors
        .iter()
        .map(|f| (f.name.to_owned(), json!({ "weight": f.weight, "value": f.value })))
        .collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!("executable_download"));
    d.insert("factors".into(), serde_json::Value::Object(listed));
    d.insert("http_status".into(), json!(resp.status));
    d.insert("content_type".into(), json!(resp.content_type.as_deref()));
    d.insert("file_name".into(), json!(resp.filename.as_deref()));
    if let Some(req) = req {
        d.insert("http_method".into(), json!(&*req.method));
        d.insert("http_host".into(), json!(req.host.as_deref()));
        d.insert("url_path".into(), json!(req.path.as_deref()));
        d.insert("user_agent".into(), json!(req.user_agent.as_deref()));
    }
    let names: Vec<&str> = factors.iter().map(|f| f.name).collect();
    let url = req.map_or_else(String::new, |r| {
        format!(" for {}{}", r.host.as_deref().unwrap_or(""), r.path.as_deref().unwrap_or(""))
    });
    cand.message = format!(
        "{host} downloaded a Windows executable from {}:{}{url} (rule executable_download): {}",
        flow.b.0,
        flow.b.1,
        names.join(", ")
    );
    Some(cand)
}

fn fill(cand: &mut Candidate, r: &Request<'_>, host: IpAddr) {
    let (server, port) = r.flow.b;
    cand.peer = Some(if host == r.flow.a.0 { server } else { r.flow.a.0 });
    cand.port = Some(port);
    cand.transport = Some("tcp");
    cand.flow = Some(r.flow);
    cand.evidence.learning_state = LearningState::NotApplicable;
    cand.evidence.community_ids.push(r.flow.community_id());
    let d = &mut cand.evidence.details;
    d.insert("http_method".into(), json!(&*r.req.method));
    d.insert("http_host".into(), json!(r.req.host.as_deref()));
    d.insert("user_agent".into(), json!(r.req.user_agent.as_deref()));
    d.insert("uri_length".into(), json!(r.req.uri_len));
    d.insert("referer_present".into(), json!(r.req.referer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_lose_their_ports() {
        assert_eq!(host_part("203.0.113.9:7080"), "203.0.113.9");
        assert_eq!(host_part("[2001:db8::1]:8080"), "2001:db8::1");
        assert_eq!(host_part("example.org"), "example.org");
        assert!(is_ip_literal(host_part("203.0.113.9:7080")));
    }

    fn request(path: &str, host: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            uri_len: path.len(),
            path: Some(path.into()),
            host: Some(host.into()),
            user_agent: Some("Mozilla/5.0".into()),
            referer: false,
            content_type: None,
            content_length: None,
            connect_target: None,
        }
    }

    fn response(content_type: &str, filename: Option<&str>) -> HttpResponse {
        HttpResponse {
            status: 200,
            server: None,
            content_type: Some(content_type.into()),
            filename: filename.map(Into::into),
        }
    }

    fn names(f: &[Factor]) -> Vec<&'static str> {
        f.iter().map(|f| f.name).collect()
    }

    #[test]
    fn executables_from_scripts_or_in_disguise_are_hidden_and_static_ones_are_not() {
        let octet = response("application/octet-stream", None);
        let got = hidden_executable(Some(&request("/fg/load.php?e=1", "sploitme.example")), &octet);
        assert_eq!(names(&got), ["script_url"]);
        let got = hidden_executable(Some(&request("/x/update.exe", "203.0.113.7")), &octet);
        assert_eq!(names(&got), ["numeric_host"]);
        let got =
            hidden_executable(Some(&request("/img/logo.gif", "cdn.example")), &response("image/gif", None));
        assert_eq!(names(&got), ["url_not_executable", "content_type_not_executable"]);
        let got = hidden_executable(None, &response("application/octet-stream", Some("invoice.pdf")));
        assert_eq!(names(&got), ["file_name_not_executable"]);
        let quiet = [
            hidden_executable(Some(&request("/releases/tool-1.2.exe", "downloads.example")), &octet),
            hidden_executable(
                Some(&request("/pkg/setup.msi", "dl.example")),
                &response("application/x-msi", Some("setup.msi")),
            ),
            hidden_executable(Some(&request("/download/", "dl.example")), &octet),
        ];
        assert!(quiet.iter().all(Vec::is_empty), "{quiet:?}");
    }

    #[test]
    fn implausible_user_agents() {
        assert!(implausible_agent("curl"));
        assert!(implausible_agent("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1)"));
        assert!(implausible_agent("abcdefghijk"));
        assert!(!implausible_agent("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"));
        assert!(!implausible_agent("curl/8.5.0"));
    }
}
