//! What the engine does with application-layer observations: the first payload of a flow
//! direction identified ([`ObsKind::App`]), a TLS server's flight ([`ObsKind::TlsServer`]) and
//! bursts inside flows ([`ObsKind::Burst`]).
//!
//! - every identified service goes into the inventory (what the organisation runs, and since
//!   when);
//! - the port rules ([`super::protocol_mismatch`]) judge the direction;
//! - a ClientHello is counted in the JA4 census and scored by [`super::suspicious_tls`]; it is
//!   kept (bounded, [`MAX_PENDING_HELLOS`]) until the server's flight shows a certificate, which
//!   is scored again with it;
//! - an HTTP request is scored by [`super::suspicious_http`] and counted in its POST series,
//!   and kept (bounded, [`MAX_PENDING_REQUESTS`]) until its response: a response carrying an
//!   executable is judged with the request that asked for it (`executable_download`);
//! - the name a flow asked for (SNI, Host) is remembered for [`super::beaconing`], which groups
//!   connections by name as well as by address ([`MAX_FLOW_NAMES`]);
//! - bursts go to [`super::beaconing`] as the beats of a heartbeat inside one flow.

use std::net::IpAddr;
use std::sync::Arc;

use super::host::{FlowRef, Map};
use super::suspicious_http::{self, Request};
use super::suspicious_tls::{self, Seen};
use super::{Engine, PointCtx, protocol_mismatch};
use crate::observe::Observation;
use crate::protocol::http::{HttpInfo, HttpRequest, HttpResponse};
use crate::protocol::tls::{ClientHello, TlsMessage};
use crate::protocol::{App, Protocol, Role, ServerFlight};

/// ClientHellos kept until their server's flight arrives, at most.
pub const MAX_PENDING_HELLOS: usize = 4_096;
/// HTTP requests kept until their response arrives, at most.
pub const MAX_PENDING_REQUESTS: usize = 4_096;
/// Flow names (SNI, Host) kept for beaconing, at most.
pub const MAX_FLOW_NAMES: usize = 65_536;

/// A ClientHello waiting for its server's certificate.
#[derive(Debug, Clone)]
pub struct PendingHello {
    hello: Box<ClientHello>,
    ts_ns: u64,
    ja4: Option<super::ja4_census::Prevalence>,
    new_service: bool,
}

/// A request whose headers came alone, waiting for its body.
#[derive(Debug, Clone)]
struct AwaitingBody {
    req: Box<HttpRequest>,
    new_service: bool,
    ts_ns: u64,
}

/// State of the application-layer rules.
#[derive(Debug, Default)]
pub struct AppState {
    pub(super) ja4: super::ja4_census::Ja4Census,
    pending: Map<FlowRef, PendingHello>,
    /// First requests of HTTP connections, with when, until their response.
    requests: Map<FlowRef, (Box<HttpRequest>, u64)>,
    /// POSTs whose headers came alone, until their body: judged with it.
    awaiting_body: Map<FlowRef, AwaitingBody>,
    pub(super) series: suspicious_http::C2Series,
    /// Names flows asked for, with when.
    pub(super) flow_names: Map<FlowRef, (Arc<str>, u64)>,
    /// Flows to names beaconing ignores (resolvers, reachability probes): their bursts are not
    /// beats, with when they were marked.
    quiet_flows: Map<FlowRef, u64>,
    /// Hellos and names forgotten for room.
    pub evicted: u64,
}

/// Forgets the older half of `map` by the time `at` gives.
fn forget_older_half<K: Copy + Eq + std::hash::Hash, V>(map: &mut Map<K, V>, at: impl Fn(&V) -> u64) {
    let mut times: Vec<u64> = map.values().map(&at).collect();
    times.sort_unstable();
    let cut = times.get(times.len() / 2).copied().unwrap_or(0);
    map.retain(|_, v| at(v) > cut);
}

impl AppState {
    /// The name the flow asked for, taken (each flow's name is used once, by its first record).
    pub fn take_name(&mut self, flow: &FlowRef) -> Option<Arc<str>> {
        self.flow_names.remove(flow).map(|(n, _)| n)
    }

    /// Whether the flow's name is one beaconing ignores.
    #[must_use]
    pub fn is_quiet(&self, flow: &FlowRef) -> bool {
        self.quiet_flows.contains_key(flow)
    }

    fn quiet(&mut self, flow: FlowRef, ts_ns: u64) {
        if self.quiet_flows.len() >= MAX_FLOW_NAMES {
            forget_older_half(&mut self.quiet_flows, |t| *t);
            self.evicted += 1;
        }
        self.quiet_flows.insert(flow, ts_ns);
    }

    fn remember_name(&mut self, flow: FlowRef, name: &str, ts_ns: u64) {
        if self.flow_names.len() >= MAX_FLOW_NAMES {
            forget_older_half(&mut self.flow_names, |v| v.1);
            self.evicted += 1;
        }
        self.flow_names.insert(flow, (Arc::from(name.to_ascii_lowercase()), ts_ns));
    }
}

impl Engine {
    /// An unidentified first payload that looks fully encrypted: judged by
    /// [`protocol_mismatch::encrypted`], and its service noted in the inventory as `encrypted`.
    pub(super) fn encrypted(&mut self, o: &Observation, len: u16) {
        if super::local_scope(o.dst) || super::local_scope(o.src) {
            return;
        }
        let ctx = PointCtx { settings: &self.settings, host: None, ts_ns: o.ts_ns };
        let home = &self.home;
        let is_home = |ip: IpAddr| home.iter().any(|n| n.contains(&ip));
        let found =
            protocol_mismatch::encrypted(o, len, &self.inventory, &mut self.encrypted_peers, &ctx, is_home);
        let pm = &self.settings.protocol_mismatch;
        let learn_ns = protocol_mismatch::learn_ns(pm);
        let max = usize::try_from(pm.max_services).unwrap_or(usize::MAX);
        let (_, server) = protocol_mismatch::encrypted_sides(o);
        protocol_mismatch::note_service(&mut self.inventory, max, server, 6, "encrypted", o.ts_ns, learn_ns);
        if let Some(c) = found {
            self.raise(c);
        }
    }

    /// An identified first payload of a flow direction.
    pub(super) fn app(
        &mut self,
        o: &Observation,
        protocol: &Protocol,
        body_entropy: Option<f32>,
        executable: bool,
        body_follows: bool,
    ) {
        if super::local_scope(o.dst) || super::local_scope(o.src) {
            // Multicast, broadcast and link-local traffic (SSDP, NetBIOS datagrams, mDNS) is
            // the local segment talking to itself: no port rule or context score applies.
            return;
        }
        let ctx = PointCtx { settings: &self.settings, host: None, ts_ns: o.ts_ns };
        let home = &self.home;
        let is_home = |ip: IpAddr| home.iter().any(|n| n.contains(&ip));
        if let Some(c) = protocol_mismatch::observe(o, protocol, executable, &self.inventory, &ctx, is_home) {
            self.raise(c);
        }
        if protocol.is_unknown() {
            return;
        }
        let pm = &self.settings.protocol_mismatch;
        let learn_ns = protocol_mismatch::learn_ns(pm);
        let max = usize::try_from(pm.max_services).unwrap_or(usize::MAX);
        let server = protocol_mismatch::service_side((o.src, o.sport), (o.dst, o.dport), protocol);
        let new_service = protocol_mismatch::note_service(
            &mut self.inventory,
            max,
            server,
            o.proto,
            protocol.name(),
            o.ts_ns,
            learn_ns,
        );
        // A service is only news once the inventory has had its learning period.
        let new_service = new_service && o.ts_ns.saturating_sub(self.first_ns) >= learn_ns;
        if let App::Http(info) = &protocol.app
            && let HttpInfo::Response(resp) = &**info
        {
            self.http_response(o, resp, executable);
        }
        if protocol.role != Role::Client {
            return;
        }
        let flow = FlowRef { a: (o.src, o.sport), b: (o.dst, o.dport), proto: o.proto };
        match &protocol.app {
            App::Tls(info) => {
                if let TlsMessage::ClientHello(hello) = &info.message {
                    self.hello(flow, hello, false, new_service, o.ts_ns);
                }
            }
            App::Quic { hello: Some(hello), .. } => self.hello(flow, hello, true, new_service, o.ts_ns),
            App::Http(info) => {
                if let HttpInfo::Request(req) = &**info {
                    if body_follows {
                        self.await_body(flow, req, new_service, o.ts_ns);
                    } else {
                        let r = Request { flow, req, body_entropy, new_service };
                        self.http(&r, o.ts_ns);
                    }
                }
            }
            _ => {}
        }
    }

    /// The inside endpoint of `flow` (its client when both or neither are inside), and whether
    /// its server is outside.
    fn at_fault(&self, flow: &FlowRef) -> (IpAddr, bool) {
        let client_home = self.is_home(flow.a.0);
        let server_home = self.is_home(flow.b.0);
        let host = if client_home || !server_home { flow.a.0 } else { flow.b.0 };
        (host, !server_home)
    }

    fn hello(&mut self, flow: FlowRef, hello: &ClientHello, quic: bool, new_service: bool, ts_ns: u64) {
        let (host, outside) = self.at_fault(&flow);
        let ja4 = hello.ja4.as_deref().map(|j| self.apps.ja4.count(j, host));
        if let Some(sni) = hello.sni.as_deref() {
            self.apps.remember_name(flow, sni, ts_ns);
            if super::beaconing::ignored_name(
                &sni.to_ascii_lowercase(),
                &self.settings.beaconing.ignore_names,
            ) {
                self.apps.quiet(flow, ts_ns);
            }
        }
        let seen = Seen { flow, ts_ns, quic, hello, ja4, new_service, certificate: None };
        let ctx = PointCtx { settings: &self.settings, host: Some(host), ts_ns };
        if let Some(c) = suspicious_tls::judge(&seen, host, outside, &self.names, &ctx) {
            self.raise(c);
        }
        if !quic {
            if self.apps.pending.len() >= MAX_PENDING_HELLOS {
                forget_older_half(&mut self.apps.pending, |p| p.ts_ns);
                self.apps.evicted += 1;
            }
            self.apps
                .pending
                .insert(flow, PendingHello { hello: Box::new(hello.clone()), ts_ns, ja4, new_service });
        }
    }

    /// A TLS server's flight (the observation is the server's: `src` is the server).
    pub(super) fn server_flight(&mut self, o: &Observation, flight: &ServerFlight) {
        let flow = FlowRef { a: (o.dst, o.dport), b: (o.src, o.sport), proto: o.proto };
        let Some(pending) = self.apps.pending.remove(&flow) else { return };
        let Some(certificate) = flight.certificate.as_ref() else { return };
        let (host, outside) = self.at_fault(&flow);
        let seen = Seen {
            flow,
            ts_ns: o.ts_ns,
            quic: false,
            hello: &pending.hello,
            ja4: pending.ja4,
            new_service: pending.new_service,
            certificate: Some(certificate),
        };
        let ctx = PointCtx { settings: &self.settings, host: Some(host), ts_ns: o.ts_ns };
        if let Some(mut c) = suspicious_tls::judge(&seen, host, outside, &self.names, &ctx) {
            let d = &mut c.evidence.details;
            d.insert("certificate_subject".into(), serde_json::json!(&*certificate.subject));
            d.insert("certificate_issuer".into(), serde_json::json!(&*certificate.issuer));
            self.raise(c);
        }
    }

    fn await_body(&mut self, flow: FlowRef, req: &HttpRequest, new_service: bool, ts_ns: u64) {
        if self.apps.awaiting_body.len() >= MAX_PENDING_REQUESTS {
            forget_older_half(&mut self.apps.awaiting_body, |v| v.ts_ns);
            self.apps.evicted += 1;
        }
        self.apps.awaiting_body.insert(flow, AwaitingBody { req: Box::new(req.clone()), new_service, ts_ns });
    }

    /// Judges a request that waited for its body, with the body's entropy (`None`: it never
    /// came, and the response did).
    fn judge_awaited(&mut self, flow: FlowRef, entropy: Option<f32>) {
        if let Some(w) = self.apps.awaiting_body.remove(&flow) {
            let r = Request { flow, req: &w.req, body_entropy: entropy, new_service: w.new_service };
            self.http(&r, w.ts_ns);
        }
    }

    /// The body of a request whose headers came alone (the observation is the client's).
    pub(super) fn http_body(&mut self, o: &Observation, entropy: Option<f32>) {
        let flow = FlowRef { a: (o.src, o.sport), b: (o.dst, o.dport), proto: o.proto };
        self.judge_awaited(flow, entropy);
    }

    /// A server's first HTTP response (the observation is the server's: `src` is the server).
    fn http_response(&mut self, o: &Observation, resp: &HttpResponse, executable: bool) {
        let flow = FlowRef { a: (o.dst, o.dport), b: (o.src, o.sport), proto: o.proto };
        self.judge_awaited(flow, None);
        let req = self.apps.requests.remove(&flow).map(|(r, _)| r);
        if !executable {
            return;
        }
        let factors = suspicious_http::hidden_executable(req.as_deref(), resp);
        let ctx = PointCtx { settings: &self.settings, host: Some(o.dst), ts_ns: o.ts_ns };
        if let Some(c) = suspicious_http::executable_finding(flow, req.as_deref(), resp, &factors, &ctx) {
            self.raise(c);
        }
    }

    fn http(&mut self, r: &Request<'_>, ts_ns: u64) {
        if self.apps.requests.len() >= MAX_PENDING_REQUESTS {
            forget_older_half(&mut self.apps.requests, |v| v.1);
            self.apps.evicted += 1;
        }
        self.apps.requests.insert(r.flow, (Box::new(r.req.clone()), ts_ns));
        let (host, outside) = self.at_fault(&r.flow);
        if let Some(h) = r.req.host.as_deref() {
            let name = suspicious_http::host_part(h).to_ascii_lowercase();
            self.apps.remember_name(r.flow, &name, ts_ns);
            if super::beaconing::ignored_name(&name, &self.settings.beaconing.ignore_names) {
                self.apps.quiet(r.flow, ts_ns);
            }
        }
        let ctx = PointCtx { settings: &self.settings, host: Some(host), ts_ns };
        if let Some(c) = suspicious_http::judge(r, host, outside, &ctx) {
            self.raise(c);
        }
        let s = &self.settings.suspicious_http;
        let high = matches!(&*r.req.method, "POST" | "PUT")
            && r.body_entropy.is_some_and(|e| f64::from(e) >= s.min_body_entropy);
        if !high || !outside {
            return;
        }
        let server = r.flow.b.0;
        let dest = r
            .req
            .host
            .as_deref()
            .map_or_else(|| server.to_string(), |h| suspicious_http::host_part(h).to_ascii_lowercase());
        let (domain, _) = super::dns_tunnel::split_name(&dest);
        let new = self.hosts.get(&host).is_none_or(|h| {
            !h.baseline.peers_seen.contains(super::seen::addr_key(server))
                && !h.baseline.domains_seen.contains(super::host::name_hash(&domain))
        });
        let settings = self.settings.suspicious_http.clone();
        if let Some(posts) = self.apps.series.post(host, &dest, new, r.flow, ts_ns, &settings) {
            let ctx = PointCtx { settings: &self.settings, host: Some(host), ts_ns };
            let c = suspicious_http::series_finding(r, host, &dest, &posts, &ctx);
            self.raise(c);
        }
    }
}
