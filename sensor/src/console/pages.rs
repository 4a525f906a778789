//! The console's pages, rendered on the server with maud (every interpolated value is
//! HTML-escaped) and one small inline stylesheet. No JavaScript: the verdict buttons are a
//! plain form POST.

use std::net::IpAddr;

use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;

use super::chart;
use super::store::{Given, Incident};
use crate::alert::{Alert, rfc3339};
use crate::control::Report;
use crate::detect::verdict::Kind;
use crate::detect::view::{HostSummary, HostView};
use crate::stats::StatsSnapshot;

const CSS: &str = "body{font-family:DejaVu Sans,sans-serif;margin:0;color:#222;background:#f6f7f9}\
nav{background:#1f2d3d;padding:8px 16px}nav a{color:#fff;margin-right:18px;text-decoration:none;font-weight:bold}\
main{padding:12px 20px}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.4em}\
table{border-collapse:collapse;background:#fff;margin:6px 0}td,th{border:1px solid #ccd;padding:3px 8px;text-align:left;font-size:.9em}\
th{background:#e8ecf2}.sev-critical{color:#a00;font-weight:bold}.sev-high{color:#c40}.sev-medium{color:#a80}.sev-low{color:#476}\
.chart{background:#fff;border:1px solid #ccd;display:inline-block}.bad{color:#a00;font-weight:bold}.ok{color:#171}\
form.verdict{background:#fff;border:1px solid #ccd;padding:8px;display:inline-block}form.verdict input{margin:2px 6px 2px 0}\
button{margin-right:6px;padding:4px 10px}code{font-size:.85em;word-break:break-all}.note{color:#666;font-size:.85em}";

fn page(title: &str, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · nbad-sensor console" }
                style { (PreEscaped(CSS)) }
            }
            body {
                nav {
                    a href="/" { "Incidents" }
                    a href="/alerts" { "Alerts" }
                    a href="/hosts" { "Hosts" }
                    a href="/health" { "Capture health" }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn time(ns: u64) -> String {
    rfc3339(ns)
}

fn severity(a: &Alert) -> Markup {
    let s = a.severity.name();
    html! { span class=(format!("sev-{s}")) { (a.risk_score) " " (s) } }
}

fn host_link(ip: IpAddr) -> Markup {
    html! { a href=(format!("/host/{ip}")) { (ip) } }
}

fn alert_rows(alerts: &[std::sync::Arc<Alert>]) -> Markup {
    html! {
        table.alerts {
            tr { th { "time" } th { "detector" } th { "host" } th { "peer" } th { "risk" } th { "what happened" } }
            @for a in alerts {
                tr {
                    td { (time(a.timestamp_ns)) }
                    td { (a.detector.name()) }
                    td { (host_link(a.host)) }
                    td { @if let Some(p) = a.peer { (p) } @if let Some(port) = a.port { ":" (port) } }
                    td { (severity(a)) }
                    td { a href=(format!("/alert/{}", a.id)) { (a.message) } }
                }
            }
        }
    }
}

/// The incidents page: open incidents with their stages and risk, then the newest alerts.
#[must_use]
pub fn incidents(incidents: &[Incident], recent: &[std::sync::Arc<Alert>], raised: u64) -> Markup {
    let body = html! {
        p.note { (incidents.len()) " incidents; " (raised) " alerts raised since the sensor started." }
        @if incidents.is_empty() { p { "No incident yet." } }
        @else {
            table.incidents {
                tr { th { "incident" } th { "host" } th { "risk" } th { "alerts" } th { "stages" } th { "opened" } }
                @for i in incidents {
                    tr {
                        td { a href=(format!("/incident/{}", i.id)) { code { (i.id) } } }
                        td { (host_link(i.latest.host)) }
                        td { (severity(&i.latest)) @if let Some(r) = i.record() { " (" (format!("{:.0}", r.risk)) ")" } }
                        td { (i.latest.incident.as_ref().map_or(0, |r| r.alert_count)) }
                        td {
                            @if let Some(r) = i.record() {
                                @for (n, s) in r.steps.iter().enumerate() {
                                    @if n > 0 { " → " }
                                    b { (s.stage) } " ("
                                    (s.detectors.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")) ")"
                                }
                            }
                        }
                        td { (i.record().map_or_else(String::new, |r| time(r.opened_ns))) }
                    }
                }
            }
        }
        h2 { "Newest alerts" }
        (alert_rows(&recent[..recent.len().min(50)]))
    };
    page("Open incidents", &body)
}

/// One incident: its record's story and its alerts.
#[must_use]
pub fn incident(i: &Incident, alerts: &[std::sync::Arc<Alert>], csrf: &str) -> Markup {
    let body = html! {
        p { (i.latest.message) }
        @if let Some(r) = i.record() {
            table {
                tr { th { "stage" } th { "first" } th { "last" } th { "detectors" } th { "alerts" } th { "peers" } }
                @for s in &r.steps {
                    tr {
                        td { (s.stage) } td { (time(s.first_ns)) } td { (time(s.last_ns)) }
                        td { (s.detectors.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")) }
                        td { (s.alerts) }
                        td { (s.peers.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
        h2 { "Verdict on the whole incident" }
        (verdict_form(&i.id, csrf))
        h2 { "Its alerts" }
        (alert_rows(alerts))
    };
    page(&format!("Incident of {}", i.latest.host), &body)
}

/// Every remembered alert.
#[must_use]
pub fn alerts(alerts: &[std::sync::Arc<Alert>]) -> Markup {
    page("Alerts", &alert_rows(alerts))
}

fn verdict_form(id: &str, csrf: &str) -> Markup {
    html! {
        form.verdict method="post" action="/verdict" {
            input type="hidden" name="id" value=(id);
            input type="hidden" name="csrf" value=(csrf);
            label { "reason " input type="text" name="reason" required size="28" value="judged in the console"; }
            label { "author " input type="text" name="author" required size="12" value="analyst"; }
            label { "expires (days) " input type="number" name="expires_days" min="1" size="4"; }
            br;
            @for k in Kind::ALL {
                button type="submit" name="verdict" value=(k.name()) id=(format!("verdict-{}", k.name())) { (k.name().replace('_', " ")) }
            }
        }
    }
}

/// An alert's evidence: the chart, the numbers, the flows, the verdict buttons.
#[must_use]
pub fn alert(a: &Alert, given: &[Given], csrf: &str) -> Markup {
    let e = &a.evidence;
    let svg = chart::evidence(e.observed, e.baseline_band, e.baseline_mean, e.threshold);
    let body = html! {
        p { (a.message) }
        table {
            tr { th { "detector" } td { (a.detector.name()) " — " (a.description) } }
            tr { th { "alert id" } td { code { (a.id) } } }
            tr { th { "host" } td { (host_link(a.host)) @if let Some(o) = &a.host_owner { " (" (o) ")" } " criticality " (a.host_criticality) } }
            @if let Some(p) = a.peer { tr { th { "peer" } td { (p) @if let Some(port) = a.port { ":" (port) } @if let Some(t) = &a.transport { " " (t) } } } }
            tr { th { "risk" } td { (severity(a)) } }
            @if let Some(i) = &a.incident {
                tr { th { "incident" } td { a href=(format!("/incident/{}", i.id)) { code { (i.id) } } " (host risk " (i.host_risk) ", " (i.alert_count) " alerts)" } }
            }
        }
        h2 { "Evidence: " (e.metric) }
        @match svg {
            Some(svg) => div.chart #evidence-chart { (PreEscaped(svg)) },
            None => p.note { "The chart could not be drawn; the numbers are below." },
        }
        table.evidence {
            tr { th { "observed" } td #observed { (format_value(e.observed)) } }
            tr { th { "baseline mean" } td { (e.baseline_mean.map_or_else(|| "—".to_owned(), format_value)) } }
            tr { th { "baseline band" } td { (e.baseline_band.map_or_else(|| "—".to_owned(), |b| format!("{} – {}", format_value(b[0]), format_value(b[1])))) } }
            tr { th { "threshold" } td #threshold { (format_value(e.threshold)) } }
            tr { th { "learning state" } td { (e.learning_state.name()) } }
            tr { th { "window" } td { (time(e.window_start_ns)) " – " (time(e.window_end_ns)) } }
        }
        h2 { "Flows behind it" }
        @if e.community_ids.is_empty() && a.community_id.is_none() { p.note { "This detector names no flows." } }
        ul.flows {
            @if let Some(c) = &a.community_id { li { code { (c) } " (the alert's flow)" } }
            @for c in &e.community_ids { li { code.community-id { (c) } } }
        }
        @if !e.details.is_empty() {
            h2 { "Details" }
            table {
                @for (k, v) in &e.details { tr { th { (k) } td { code { (detail(v)) } } } }
            }
        }
        h2 { "Verdict" }
        @for g in given { p.given { "Given: " b { (g.verdict) } " by " (g.author) " — " (g.outcome) } }
        (verdict_form(&a.id, csrf))
    };
    page(&format!("{} alert on {}", a.detector.name(), a.host), &body)
}

fn detail(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn format_value(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.3}") }
}

/// A host: learning state, the hourly history, each metric against its band, peers, protocols.
#[must_use]
pub fn host(v: &HostView, alerts: &[std::sync::Arc<Alert>]) -> Markup {
    let body = html! {
        table {
            tr { th { "learning state" } td #learning-state { (v.learning_state.name()) } }
            tr { th { "learned" } td { (v.buckets) " buckets, " (time(v.learned_ns[0])) " – " (time(v.learned_ns[1])) @if v.relearn > 0 { ", " (v.relearn) " to relearn" } } }
            tr { th { "role" } td { (v.role.kind) @if let Some(g) = &v.role.peer_group { ", peer group " (g) } } }
            tr { th { "services" } td { @if v.role.services.is_empty() { "none seen" } (v.role.services.join(", ")) } }
            tr { th { "verdicts" } td { (v.held.0) " buckets held for a verdict, " (v.held.1) " learned after a benign verdict, " (v.held.2) " kept out after a true positive" } }
        }
        h2 { "Outbound bytes per hour" }
        @match chart::hourly(&v.hourly_out) {
            Some(svg) => div.chart #history-chart { (PreEscaped(svg)) },
            None => p.note { "No hourly history yet." },
        }
        p.note { "Orange marks hours in which a volume rule saw a candidate bucket." }
        h2 { "Protocols (typical outbound bytes per bucket)" }
        table { tr { @for (t, _) in &v.transports { th { (t) } } } tr { @for (_, b) in &v.transports { td { (chart::human(*b)) } } } }
        h2 { "Baselines" }
        table.metrics {
            tr { th { "metric" } th { "typical" } th { "band (±4 sd)" } th { "bucket in progress" } th { "buckets learned" } }
            @for m in &v.metrics {
                tr {
                    td { (m.name) } td { (chart::human(m.typical)) }
                    td { (chart::human(m.band[0])) " – " (chart::human(m.band[1])) }
                    td class=(if m.current > m.band[1] && m.buckets > 0 { "bad" } else { "" }) { (chart::human(m.current)) }
                    td { (m.buckets) }
                }
            }
        }
        h2 { "Outside peers (bucket in progress)" }
        @if v.peers.is_empty() { p.note { "None in the bucket in progress." } }
        @else {
            table.peers {
                tr { th { "peer" } th { "service" } th { "bytes out" } th { "bytes in" } th { "new" } th { "community IDs" } }
                @for p in &v.peers {
                    tr {
                        td { (p.peer) } td { (p.service.as_deref().unwrap_or("")) }
                        td { (chart::human(p.bytes_out as f64)) } td { (chart::human(p.bytes_in as f64)) }
                        td { @if p.new { "new" } }
                        td { @for c in &p.community_ids { code { (c) } " " } }
                    }
                }
            }
        }
        h2 { "Its alerts" }
        (alert_rows(alerts))
    };
    page(&format!("Host {}", v.host), &body)
}

/// The hosts the engine tracks.
#[must_use]
pub fn hosts(hosts: &[HostSummary]) -> Markup {
    let body = html! {
        table {
            tr { th { "host" } th { "learning state" } th { "buckets learned" } th { "last learned" } }
            @for h in hosts {
                tr { td { (host_link(h.host)) } td { (h.learning_state.name()) } td { (h.buckets) } td { (time(h.last_ns)) } }
            }
        }
    };
    page("Hosts", &body)
}

/// Capture health: drops, capture loss, flow-table fill, sinks and exporters, verdict figures.
#[must_use]
pub fn health(s: &StatsSnapshot, flow_capacity: u64, report: Option<&Report>) -> Markup {
    let c = &s.capture;
    let fill = if flow_capacity == 0 { 0.0 } else { s.flows.active as f64 / flow_capacity as f64 };
    let sinks = s
        .delivery
        .as_ref()
        .and_then(|d| d.get("sinks"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let body = html! {
        h2 { "Capture" }
        table.capture {
            tr { th { "packets read" } td { (c.packets_read) } }
            tr { th { "kernel drops" } td class=(if c.kernel_dropped > 0 { "bad" } else { "ok" }) { (c.kernel_dropped) } }
            tr { th { "interface drops" } td class=(if c.interface_dropped > 0 { "bad" } else { "ok" }) { (c.interface_dropped) } }
            tr { th { "capture loss (unseen ACKs)" } td #capture-loss { (format!("{:.3} %", s.capture_loss.unseen_ack_ratio * 100.0)) " of " (s.capture_loss.ack_events) " ACKs" } }
            tr { th { "kernel drop ratio" } td { (format!("{:.3} %", s.capture_loss.kernel_drop_ratio * 100.0)) } }
            tr { th { "malformed packets" } td { (s.decode.malformed_total) } }
        }
        h2 { "Flow table" }
        table.flows {
            tr { th { "fill" } td #flow-fill { (s.flows.active) " of " (flow_capacity) " (" (format!("{:.1} %", fill * 100.0)) ")" } }
            tr { th { "peak" } td { (s.flows.active_peak) } }
            tr { th { "evicted when full" } td class=(if s.flows.evicted > 0 { "bad" } else { "ok" }) { (s.flows.evicted) } }
            tr { th { "emergency mode entered" } td { (s.flows.emergency_entered) } }
            tr { th { "records" } td { (s.flows.records) } }
        }
        h2 { "Alert sinks" }
        @if sinks.is_empty() { p.note #sinks { "No alert sink is configured (alerts go to --alerts and this console only)." } }
        @else {
            table #sinks {
                tr { th { "sink" } th { "kind" } th { "status" } th { "sent" } th { "failed" } th { "spooled" } th { "last error" } }
                @for k in &sinks {
                    @let healthy = k.get("healthy").and_then(Value::as_bool).unwrap_or(false);
                    tr {
                        td { (k.get("name").map(detail).unwrap_or_default()) }
                        td { (k.get("kind").map(detail).unwrap_or_default()) }
                        td class=(if healthy { "ok" } else { "bad" }) { (if healthy { "healthy" } else { "failing" }) }
                        td { (k.get("sent").map(detail).unwrap_or_default()) }
                        td { (k.get("failed").map(detail).unwrap_or_default()) }
                        td { (k.get("spool_depth").map(detail).unwrap_or_default()) }
                        td { (k.get("last_error").filter(|e| !e.is_null()).map(detail).unwrap_or_default()) }
                    }
                }
            }
        }
        @if !s.output.export.is_empty() {
            h2 { "Flow exporters" }
            table {
                tr { th { "exporter" } th { "destination" } th { "status" } th { "sent" } th { "dropped" } }
                @for x in &s.output.export {
                    tr {
                        td { (x.name) " (" (x.kind) ")" } td { (x.destination) }
                        td class=(if x.healthy { "ok" } else { "bad" }) { (if x.healthy { "healthy" } else { "failing" }) }
                        td { (x.sent) } td { (x.dropped_queue_full + x.dropped_send_error + x.dropped_shutdown) }
                    }
                }
            }
        }
        @if let Some(r) = report {
            h2 { "Verdicts" }
            table.figures {
                tr { th { "detector / rule" } th { "true positive" } th { "false positive" } th { "benign expected" } th { "precision" } }
                @for f in &r.figures.rules {
                    tr {
                        td { (f.detector) " / " (f.rule) } td { (f.true_positive) } td { (f.false_positive) } td { (f.benign_expected) }
                        td { (f.precision.map_or_else(|| "—".to_owned(), |p| format!("{:.2}", p))) }
                    }
                }
            }
            p { "Time to detect (median): " (r.figures.ttd_median_s.map_or_else(|| "—".to_owned(), |t| format!("{t:.0} s")))
                "; suppressions in force: " (r.suppressions.len()) "; alerts remembered for verdicts: " (r.ledger) }
        }
        p.note { "Counters since the sensor started, as of " (format!("{:.1}", s.elapsed_s)) " s into the run." }
    };
    page("Capture health", &body)
}

/// A page that says what went wrong, in the console's frame.
#[must_use]
pub fn message(title: &str, text: &str) -> Markup {
    page(title, &html! { p { (text) } })
}
