//! `dns_tunnel`: data carried in DNS names and answers.
//!
//! Evaluated when a bucket closes, per host and registered domain (the public
//! suffix list decides what "registered" means: `a.b.example.co.uk` is under
//! `example.co.uk`). Rules, the strongest wins:
//!
//! - **unique subdomains**: at least `min_unique_subdomains` distinct names
//!   under one domain whose part left of the domain is long on average
//!   (`min_mean_subdomain_len`) and random-looking (the longest label's mean
//!   entropy at least `min_entropy − 0.5` bits per character): encoded data
//!   makes every name new, while DNSBL lookups (reversed addresses in short
//!   labels) are new but plain;
//! - **large answers**: at least `min_large_answers` TXT or NULL answers of
//!   `large_answer_bytes` or more under one domain (data coming back in);
//! - **NULL records**: at least `min_null_queries` NULL or private-type queries
//!   under one domain (iodine's favourite; nothing ordinary asks for them);
//! - **long labels**: at least `min_long_queries` queries with a label of
//!   `long_label` characters or more and an entropy of `min_entropy` bits per
//!   character or more;
//! - **record types**: at least `min_unusual_qtypes` TXT, NULL, CNAME, ANY or
//!   private-type queries under one domain with many unique names (tunnels
//!   want record types that carry bytes back);
//! - **volume**: the host's query count far above its baseline, at least
//!   `min_queries` (active baselines only);
//! - **DNS over TCP**: at least `min_tcp_messages` DNS messages over TCP from
//!   one host in a bucket (bulk transfer over TCP/53);
//! - **encoded subdomains** and **odd characters**: over the last `window_s`
//!   (10 min), not one bucket — see [`super::dns_track`]: a dozen encoded names
//!   under one domain, or one name carrying bytes no hostname has.
//!
//! Reverse lookups (`in-addr.arpa`, `ip6.arpa`), local names (`.local`,
//! `.lan`, `.internal`, `.home.arpa`) and `ignore_domains` are never reported.

use serde_json::json;

use super::baseline::Metric;
use super::dns_track::{DomainTrack, HostDns};
use super::host::{DomainAcc, HostState, entropy};
use super::{BucketCtx, Candidate, strength};
use crate::alert::{Detector, LearningState};

const DESCRIPTION: &str = "DNS traffic from the host looks like data carried in names or records (a DNS tunnel or exfiltration over DNS).";

/// Domains never reported: reverse lookups and local names.
const BUILT_IN_IGNORED: [&str; 6] = ["in-addr.arpa", "ip6.arpa", "local", "lan", "internal", "home.arpa"];

/// Query types that carry data back: CNAME, NULL, MX, TXT, KEY, ANY, and the private range.
#[must_use]
pub fn unusual_qtype(qtype: u16) -> bool {
    matches!(qtype, 5 | 10 | 15 | 16 | 25 | 255) || qtype >= 65_280
}

/// Where names are grouped whose last label is neither a known public suffix
/// nor word-like (dnscat2's direct mode puts hex data in every label, the
/// last one included).
pub const NO_SUFFIX: &str = "(no public suffix)";

/// The registered domain of `name` and the part left of it. A name under a
/// known public suffix is split there; one under an unknown but word-like
/// last label (a private TLD such as `.lan`, `.corp`, `.attack`) is grouped
/// under its last two labels; any other has no registered domain: it is
/// grouped under [`NO_SUFFIX`], all of it counting as the part left.
#[must_use]
pub fn split_name(name: &str) -> (String, String) {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    match psl::domain(lower.as_bytes()) {
        Some(d) if d.suffix().is_known() => {
            let domain = String::from_utf8_lossy(d.as_bytes()).into_owned();
            let sub = lower.strip_suffix(domain.as_str()).unwrap_or("").trim_end_matches('.').to_owned();
            (domain, sub)
        }
        _ => {
            let mut labels = lower.rsplitn(3, '.');
            let tld = labels.next().unwrap_or("");
            match labels.next() {
                Some(second)
                    if !tld.is_empty() && tld.len() <= 12 && tld.bytes().all(|b| b.is_ascii_lowercase()) =>
                {
                    let domain = format!("{second}.{tld}");
                    let sub = labels.next().unwrap_or("").to_owned();
                    (domain, sub)
                }
                _ => (NO_SUFFIX.to_owned(), lower),
            }
        }
    }
}

/// Whether the domain is one never reported.
#[must_use]
pub fn ignored(domain: &str, extra: &[String]) -> bool {
    let hit = |d: &str| domain.strip_suffix(d).is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
    BUILT_IN_IGNORED.iter().any(|d| hit(d)) || extra.iter().any(|d| hit(d.as_str()))
}

/// Whether a query name has a long, high-entropy label.
#[must_use]
pub fn long_high_entropy(sub: &str, long_label: u64, min_entropy: f64) -> bool {
    sub.split('.').any(|l| l.len() as u64 >= long_label && entropy(l) >= min_entropy)
}

/// A rule's result: score, rule, observed, threshold, and the domain.
type Finding<'a> = (f64, &'static str, f64, f64, Option<(&'a String, &'a DomainAcc)>);

/// The strongest DNS-tunnel finding of the host's bucket and its window's track, if any.
pub fn evaluate(host: &HostState, track: Option<&HostDns>, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.dns_tunnel;
    if !s.enabled {
        return None;
    }
    let per_bucket = evaluate_bucket(host, ctx);
    let windowed = track.and_then(|t| evaluate_track(t, ctx));
    match (per_bucket, windowed) {
        (Some(a), Some(b)) => Some(if b.strength > a.strength { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The strongest finding over the window's names (`encoded_subdomains`, `odd_characters`).
fn evaluate_track(track: &HostDns, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.dns_tunnel;
    let mut best: Option<(f64, &'static str, f64, f64, &String, &DomainTrack)> = None;
    let mut domains: Vec<_> = track.domains.iter().filter(|(d, _)| !ignored(d, &s.ignore_domains)).collect();
    domains.sort_by(|x, y| x.0.cmp(y.0));
    for (domain, t) in domains {
        let (unique, encoded) = t.counts();
        let share = if unique > 0 { encoded as f64 / unique as f64 } else { 0.0 };
        let mut consider = |score: f64, rule, observed: f64, threshold: f64| {
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, rule, observed, threshold, domain, t));
            }
        };
        if encoded >= s.min_encoded_names && share >= s.min_encoded_share {
            let th = s.min_encoded_names as f64;
            consider(strength(encoded as f64, th).max(0.5), "encoded_subdomains", encoded as f64, th);
        }
        if t.odd.is_some() {
            consider(0.5, "odd_characters", 1.0, 1.0);
        }
    }
    let (score, rule, observed, threshold, domain, t) = best?;
    let metric = if rule == "odd_characters" { "odd_character_names" } else { "encoded_names_in_window" };
    let mut cand = Candidate::new(Detector::DnsTunnel, DESCRIPTION, ctx, metric, observed, threshold);
    cand.strength = score;
    cand.confidence = if rule == "odd_characters" { 0.6 } else { 0.8 };
    cand.transport = Some("udp");
    cand.evidence.learning_state = LearningState::NotApplicable;
    if let Some(f) = t.flow {
        cand.peer = Some(f.b.0);
        cand.port = Some(f.b.1);
        cand.transport = super::transport_name(f.proto);
        cand.evidence.community_ids.push(f.community_id());
    }
    if let Some(first) = t.first_ns() {
        cand.evidence.window_start_ns = first;
    }
    let (unique, encoded) = t.counts();
    let qtypes: serde_json::Map<String, serde_json::Value> =
        t.qtypes.iter().map(|(q, n)| (qtype_name(*q), json!(n))).collect();
    let d = &mut cand.evidence.details;
    d.insert("rule".into(), json!(rule));
    d.insert("registered_domain".into(), json!(domain));
    d.insert("window_s".into(), json!(s.window_s));
    d.insert("unique_names".into(), json!(unique));
    d.insert("encoded_names".into(), json!(encoded));
    d.insert("encoding".into(), json!(t.alphabet));
    d.insert("domain_queries".into(), json!(t.queries));
    d.insert("query_types".into(), serde_json::Value::Object(qtypes));
    d.insert("examples".into(), json!(t.examples));
    if let Some(odd) = &t.odd {
        d.insert("odd_name".into(), json!(odd));
    }
    cand.message = if rule == "odd_characters" {
        format!(
            "{} asked for a name under {domain} carrying bytes no hostname has: {} (rule odd_characters)",
            ctx.host,
            t.odd.as_deref().unwrap_or("")
        )
    } else {
        format!(
            "{} asked for {encoded} encoded-looking names ({}) under {domain} within {} s (rule encoded_subdomains)",
            ctx.host,
            t.alphabet.unwrap_or("mixed"),
            s.window_s
        )
    };
    Some(cand)
}

/// The strongest finding of the host's bucket.
fn evaluate_bucket(host: &HostState, ctx: &BucketCtx<'_>) -> Option<Candidate> {
    let s = &ctx.settings.dns_tunnel;
    let b = &host.bucket;
    let mut best: Option<Finding<'_>> = None;
    let mut consider = |score: f64, rule, observed: f64, threshold: f64, dom| {
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, rule, observed, threshold, dom));
        }
    };
    let mut domains: Vec<_> = b.domains.iter().filter(|(d, _)| !ignored(d, &s.ignore_domains)).collect();
    domains.sort_by(|x, y| x.0.cmp(y.0));
    for (domain, acc) in domains {
        let unique = acc.names.len() as u64;
        let mean_len = acc.sub_len_sum as f64 / acc.queries.max(1) as f64;
        let mean_entropy = acc.sub_entropy_sum / acc.queries.max(1) as f64;
        if acc.large_answers >= s.min_large_answers {
            let t = s.min_large_answers as f64;
            consider(
                strength(acc.large_answers as f64, t),
                "large_answers",
                acc.large_answers as f64,
                t,
                Some((domain, acc)),
            );
        }
        if acc.null_queries >= s.min_null_queries {
            let t = s.min_null_queries as f64;
            consider(
                strength(acc.null_queries as f64, t).max(0.5),
                "null_records",
                acc.null_queries as f64,
                t,
                Some((domain, acc)),
            );
        }
        if unique >= s.min_unique_subdomains
            && mean_len >= s.min_mean_subdomain_len
            && mean_entropy >= s.min_entropy - 0.5
        {
            let t = s.min_unique_subdomains as f64;
            consider(strength(unique as f64, t), "unique_subdomains", unique as f64, t, Some((domain, acc)));
        }
        if acc.long_queries >= s.min_long_queries {
            let t = s.min_long_queries as f64;
            consider(
                strength(acc.long_queries as f64, t),
                "long_labels",
                acc.long_queries as f64,
                t,
                Some((domain, acc)),
            );
        }
        if acc.unusual_qtypes >= s.min_unusual_qtypes && unique * 2 >= s.min_unique_subdomains {
            let t = s.min_unusual_qtypes as f64;
            consider(
                strength(acc.unusual_qtypes as f64, t),
                "record_types",
                acc.unusual_qtypes as f64,
                t,
                Some((domain, acc)),
            );
        }
    }
    let base = host.baseline.metric(Metric::DnsQueries);
    if ctx.state == LearningState::Active && b.dns_queries >= s.min_queries {
        let band = base.band(ctx.settings.sigma);
        if b.dns_queries as f64 > band[1] {
            let t = band[1].max(s.min_queries as f64);
            consider(strength(b.dns_queries as f64, t) * 0.8, "volume", b.dns_queries as f64, t, None);
        }
    }
    if b.dns_tcp_messages >= s.min_tcp_messages {
        let t = s.min_tcp_messages as f64;
        consider(strength(b.dns_tcp_messages as f64, t), "dns_over_tcp", b.dns_tcp_messages as f64, t, None);
    }
    let (score, rule, observed, threshold, dom) = best?;
    let metric = match rule {
        "unique_subdomains" => "unique_subdomains",
        "long_labels" => "long_high_entropy_queries",
        "record_types" => "unusual_qtype_queries",
        "null_records" => "null_queries",
        "large_answers" => "large_txt_answers",
        "volume" => "dns_queries",
        _ => "dns_tcp_messages",
    };
    let mut cand = Candidate::new(Detector::DnsTunnel, DESCRIPTION, ctx, metric, observed, threshold);
    cand.strength = score;
    cand.confidence = match rule {
        "volume" => 0.5,
        "dns_over_tcp" => 0.6,
        _ => 0.85,
    };
    cand.transport = Some("udp");
    cand.evidence.details.insert("rule".into(), json!(rule));
    cand.evidence.details.insert("queries".into(), json!(b.dns_queries));
    if rule == "volume" {
        cand.evidence.baseline_mean = Some(base.typical());
        cand.evidence.baseline_band = Some(base.band(ctx.settings.sigma));
    }
    if let Some((domain, acc)) = dom {
        if let Some(f) = acc.flow {
            cand.peer = Some(f.b.0);
            cand.port = Some(f.b.1);
            cand.transport = super::transport_name(f.proto);
            cand.evidence.community_ids.push(f.community_id());
        }
        let mean_len = acc.sub_len_sum as f64 / acc.queries.max(1) as f64;
        let qtypes: serde_json::Map<String, serde_json::Value> =
            acc.qtypes.iter().map(|(t, n)| (qtype_name(*t), json!(n))).collect();
        let d = &mut cand.evidence.details;
        d.insert("registered_domain".into(), json!(domain));
        d.insert("domain_queries".into(), json!(acc.queries));
        d.insert("large_answers".into(), json!(acc.large_answers));
        d.insert("unique_subdomains".into(), json!(acc.names.len()));
        d.insert("mean_subdomain_length".into(), json!((mean_len * 10.0).round() / 10.0));
        d.insert("long_high_entropy_queries".into(), json!(acc.long_queries));
        d.insert(
            "mean_subdomain_entropy".into(),
            json!(((acc.sub_entropy_sum / acc.queries.max(1) as f64) * 100.0).round() / 100.0),
        );
        d.insert("query_types".into(), serde_json::Value::Object(qtypes));
        d.insert("examples".into(), json!(acc.examples));
        cand.message = format!(
            "{} sent {} DNS queries for {} unique names under {} in {} s (rule {})",
            ctx.host,
            acc.queries,
            acc.names.len(),
            domain,
            ctx.bucket_s(),
            rule
        );
    } else {
        cand.message = format!(
            "{} sent {} DNS queries in {} s (rule {}, observed {observed})",
            ctx.host,
            b.dns_queries,
            ctx.bucket_s(),
            rule
        );
    }
    Some(cand)
}

fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        10 => "NULL".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_names_at_the_registered_domain() {
        assert_eq!(split_name("a.b.example.co.uk"), ("example.co.uk".into(), "a.b".into()));
        assert_eq!(split_name("x.tunnel.example.com."), ("example.com".into(), "x.tunnel".into()));
        assert_eq!(split_name("example.com"), ("example.com".into(), String::new()));
        assert_eq!(split_name("aGVsbG8.x.pirate.sea"), ("pirate.sea".into(), "agvsbg8.x".into()));
        let dnscat = "dnscat.546b03f50000000000a6023ed4df.19e4d098dc8c618f8d81cfeb02";
        assert_eq!(split_name(dnscat), (NO_SUFFIX.into(), dnscat.into()));
    }

    #[test]
    fn reverse_and_local_names_are_ignored() {
        assert!(ignored("in-addr.arpa", &[]));
        assert!(ignored("printer.local", &[]));
        assert!(!ignored("example.com", &[]));
        assert!(ignored("sophosxl.net", &["sophosxl.net".into()]));
    }

    #[test]
    fn long_random_labels_are_flagged_and_words_are_not() {
        assert!(long_high_entropy("t4jk2n3b5v6c7x8z9l0qwpeoriuty5a1s2d3f4g5h6j", 40, 3.5));
        assert!(!long_high_entropy("www", 40, 3.5));
        assert!(!long_high_entropy("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 40, 3.5));
    }
}
