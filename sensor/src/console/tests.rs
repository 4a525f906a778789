//! Unit tests of the console: settings, credentials, the store, the charts, and the real
//! server on a loopback port (authentication, the login cookie, CSRF).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;

use super::*;
use crate::config;

fn console_error(table: &str) -> String {
    config::from_str(&format!("[console]\n{table}"), "x.toml").expect_err("refused").to_string()
}

#[test]
fn the_console_is_off_by_default_and_a_bare_port_binds_loopback() {
    assert_eq!(config::from_str("", "x.toml").expect("defaults").console, None);
    let cfg =
        config::from_str("[console]\nlisten = \"8480\"\ntoken_file = \"/t\"\n", "x.toml").expect("valid");
    let c = cfg.console.clone().expect("on");
    assert_eq!(c.listen.to_string(), "127.0.0.1:8480");
    assert_eq!(c.max_alerts, 2000);
    assert!(cfg.effective_toml().contains("[console]\nlisten = \"127.0.0.1:8480\""));
}

#[test]
fn a_console_without_token_or_client_certificates_is_refused_naming_the_key() {
    let e = console_error("listen = \"8480\"\n");
    assert!(e.contains("console.token_file = \"\" is invalid"), "{e}");
    assert!(e.contains("never runs unauthenticated"), "{e}");
}

#[test]
fn a_non_loopback_address_needs_tls() {
    let e = console_error("listen = \"0.0.0.0:8480\"\ntoken_file = \"/t\"\n");
    assert!(e.contains("console.listen = \"0.0.0.0:8480\" is invalid"), "{e}");
    assert!(e.contains("tls_cert"), "{e}");
    let ok = config::from_str(
        "[console]\nlisten = \"0.0.0.0:8480\"\ntls_cert = \"/c\"\ntls_key = \"/k\"\ntls_client_ca = \"/ca\"\n",
        "x.toml",
    )
    .expect("TLS with client certificates needs no token");
    assert!(ok.console.is_some_and(|c| c.token_file.is_none() && c.tls.is_some()));
}

#[test]
fn bad_console_values_name_the_key_the_value_and_what_is_valid() {
    let e = console_error("listen = \"localhost:http\"\ntoken_file = \"/t\"\n");
    assert!(e.contains("console.listen = \"localhost:http\" is invalid: expected \"\" (off), a port"), "{e}");
    let e = console_error("listen = \"8480\"\ntoken_file = \"/t\"\nmax_alerts = 0\n");
    assert!(e.contains("console.max_alerts = 0 is invalid: expected an integer from 1 to 100000"), "{e}");
    let e = console_error("listen = \"8480\"\ntoken_file = \"/t\"\ntls_cert = \"/c\"\n");
    assert!(e.contains("console.tls_key"), "{e}");
    let e = console_error("listen = \"8480\"\ntokenfile = \"/t\"\n");
    assert!(e.contains("unknown field `tokenfile`"), "{e}");
}

fn token_file(dir: &std::path::Path, text: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, text).expect("write token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

#[test]
fn a_token_file_other_users_can_read_or_a_short_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = token_file(dir.path(), "0123456789abcdef0123", 0o644);
    let e = auth::Auth::load(Some(&path), false, false).expect_err("world-readable").to_string();
    assert!(e.contains("console.token_file") && e.contains("mode 0644"), "{e}");
    let path = token_file(dir.path(), "short", 0o600);
    let e = auth::Auth::load(Some(&path), false, false).expect_err("short").to_string();
    assert!(e.contains("at least 16"), "{e}");
    let path = token_file(dir.path(), "0123456789abcdef0123\n", 0o640);
    let a = auth::Auth::load(Some(&path), false, false).expect("a group-readable token file is fine");
    assert!(a.token_ok("0123456789abcdef0123"));
    assert!(!a.token_ok("0123456789abcdef012"));
}

fn alert(id: &str, incident: Option<(&str, u32)>) -> crate::alert::Alert {
    let mut a: crate::alert::Alert = serde_json::from_value(serde_json::json!({
        "id": id, "timestamp_ns": 1_000_000_000u64, "sensor_id": "t", "detector": "scan",
        "description": "d", "message": "m", "risk_score": 50, "severity": "medium",
        "host": "10.0.0.1", "peer": null, "port": null, "transport": null, "community_id": null,
        "host_criticality": 3, "host_owner": null,
        "evidence": { "metric": "distinct_ports", "observed": 100.0, "baseline_mean": null,
            "baseline_band": null, "threshold": 20.0, "learning_state": "learning",
            "window_start_ns": 0, "window_end_ns": 1, "community_ids": [], "details": {} },
        "incident": null
    }))
    .expect("alert JSON");
    if let Some((inc, seq)) = incident {
        a.incident = Some(crate::alert::IncidentRef {
            id: inc.into(),
            host_risk: 10 * seq,
            alert_count: seq,
            related: vec![],
        });
        a.record = Some(Box::new(crate::alert::incident::IncidentRecord {
            action: crate::alert::incident::IncidentAction::Opened,
            sequence: seq,
            opened_ns: 0,
            steps: vec![],
            risk: f64::from(seq),
        }));
    }
    a
}

#[test]
fn the_store_keeps_the_newest_alerts_and_each_incidents_latest_record() {
    let store = Store::new(2);
    store.add(&[alert("a", None), alert("b", None), alert("c", None)]);
    store.add(&[
        alert("r1", Some(("inc-1", 1))),
        alert("r2", Some(("inc-1", 2))),
        alert("r3", Some(("inc-2", 1))),
    ]);
    assert_eq!(store.raised(), 3);
    let ids: Vec<String> = store.alerts().iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids, ["c", "b"]);
    let incidents = store.incidents();
    assert_eq!(incidents.len(), 2);
    assert_eq!((incidents[0].id.as_str(), incidents[0].latest.id.as_str()), ("inc-1", "r2"));
}

#[test]
fn the_evidence_chart_is_inline_svg_with_band_threshold_and_observed_value() {
    let svg = chart::evidence(1_000.0, Some([10.0, 400.0]), Some(100.0), 500.0).expect("drawn");
    assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
    for label in ["baseline band", "baseline mean", "observed", "threshold"] {
        assert!(svg.contains(label), "legend lacks {label}");
    }
    let svg = chart::hourly(&[(0, 5, false), (3_600_000_000_000, 7_000, true)]).expect("drawn");
    assert!(svg.contains("hours before the newest"));
    assert_eq!(chart::hourly(&[]), None);
    assert_eq!(chart::human(1_234_567.0), "1.23M");
}

/// One HTTP/1.1 request to the console; returns the status line, the headers and the body.
fn http(addr: SocketAddr, head: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    let req =
        format!("{head}\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

fn running(dir: &std::path::Path) -> (Console, Store, crossbeam_channel::Receiver<Call>) {
    let path = token_file(dir, "0123456789abcdef0123", 0o600);
    let settings = ConsoleSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        token_file: Some(path),
        tls: None,
        max_alerts: 10,
    };
    let store = Store::new(10);
    let (tx, rx) = crate::control::channel();
    let hub = Arc::new(StatsHub::new(1));
    let console = start(&settings, store.clone(), Some(tx), hub, 100).expect("console starts");
    (console, store, rx)
}

#[test]
fn every_page_needs_the_token_and_the_login_sets_a_strict_http_only_cookie() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (console, store, _rx) = running(dir.path());
    store.add(&[alert("a1", None)]);
    let addr = console.local_addr();
    assert!(http(addr, "GET / HTTP/1.1", "").starts_with("HTTP/1.1 401"));
    assert!(
        http(addr, "GET /alert/a1 HTTP/1.1\r\nAuthorization: Bearer wrong-token-0123456", "")
            .starts_with("HTTP/1.1 401")
    );
    let page = http(addr, "GET /alert/a1 HTTP/1.1\r\nAuthorization: Bearer 0123456789abcdef0123", "");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Evidence: distinct_ports") && page.contains("<svg"));
    assert!(http(addr, "GET /login?token=nope HTTP/1.1", "").starts_with("HTTP/1.1 401"));
    let login = http(addr, "GET /login?token=0123456789abcdef0123 HTTP/1.1", "");
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = login.lines().find_map(|l| l.strip_prefix("set-cookie: ")).expect("a cookie is set");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = cookie.split(';').next().expect("name=value");
    assert!(!session.contains("0123456789abcdef0123"), "the cookie is not the token");
    let page = http(addr, &format!("GET / HTTP/1.1\r\nCookie: {session}"), "");
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("Open incidents"), "{page}");
}

#[test]
fn a_verdict_without_the_forms_csrf_token_is_refused_and_never_reaches_the_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (console, store, rx) = running(dir.path());
    store.add(&[alert("a1", None)]);
    let auth =
        "Authorization: Bearer 0123456789abcdef0123\r\nContent-Type: application/x-www-form-urlencoded";
    let body = "id=a1&csrf=forged&verdict=false_positive&reason=r&author=me&expires_days=";
    let res = http(console.local_addr(), &format!("POST /verdict HTTP/1.1\r\n{auth}"), body);
    assert!(res.starts_with("HTTP/1.1 403"), "{res}");
    assert!(rx.try_recv().is_err(), "nothing was asked of the engine");
}
