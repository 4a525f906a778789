use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;

use super::*;

/// Answers every call with the report of an empty book, as the analysis stage would.
fn answer_reports(rx: Receiver<Call>) {
    std::thread::spawn(move || {
        for call in rx {
            let _ = call.reply.send(Reply::Report { report: Report::of(&verdict::Book::default()) });
        }
    });
}

#[test]
fn a_report_request_is_answered_through_the_socket_with_mode_0660() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    let (tx, rx) = channel();
    let server = serve(&path, tx).expect("serve");
    answer_reports(rx);
    let mode = std::fs::metadata(&path).expect("socket exists").permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    match call(&path, &Request::Report).expect("call") {
        Reply::Report { report } => assert_eq!(report.ledger, 0),
        other => panic!("unexpected reply {other:?}"),
    }
    drop(server);
    assert!(!path.exists(), "the socket goes with the server");
}

#[test]
fn garbage_and_oversized_requests_get_an_error_and_the_socket_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    let (tx, rx) = channel();
    let _server = serve(&path, tx).expect("serve");
    answer_reports(rx);
    for body in [b"{\"op\":\"shutdown\"}\n".to_vec(), vec![b'x'; 70_000]] {
        let mut s = UnixStream::connect(&path).expect("connect");
        s.write_all(&body).expect("write");
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read answer");
        let reply: Reply = serde_json::from_str(answer.trim_end()).expect("a reply");
        assert!(matches!(reply, Reply::Error { .. }), "{answer}");
    }
    assert!(matches!(call(&path, &Request::Report), Ok(Reply::Report { .. })));
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("control.sock");
    drop(UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists());
    let (tx, rx) = channel();
    let _server = serve(&path, tx.clone()).expect("a stale socket is replaced");
    answer_reports(rx);
    let err = serve(&path, tx).expect_err("a second sensor on the same socket");
    assert!(err.to_string().contains("another sensor"), "{err}");
    assert!(is_live(&path));
}
