//! The console's HTTP server: axum routes behind an authentication check, served by our own
//! accept loop on a current-thread tokio runtime of its own thread, so that plain TCP and TLS
//! (tokio-rustls, optionally requiring client certificates) serve the same router.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (more wait in the kernel's
//! backlog), a request head within [`HEAD_TIMEOUT`], a TLS handshake within the same, request
//! bodies of at most [`MAX_BODY`] bytes. Requests to the engine go over the control channel
//! on a blocking thread and wait at most the control socket's timeout.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use crossbeam_channel::Sender;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::auth::Auth;
use super::pages;
use super::store::{Given, Store};
use crate::control::{Call, IO_TIMEOUT, Reply, Request as ControlRequest};
use crate::stats::StatsHub;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// A request head, or a TLS handshake, must arrive within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body, bytes (a verdict form is a few hundred).
pub const MAX_BODY: usize = 16 * 1024;

/// What the pages read.
#[derive(Debug)]
pub struct App {
    /// Credentials.
    pub auth: Auth,
    /// Recent alerts and incidents.
    pub store: Store,
    /// The control channel to the analysis stage (`None`: detection is off).
    pub control: Option<Sender<Call>>,
    /// Counters of the run.
    pub hub: Arc<StatsHub>,
    /// `flows.max_flows`.
    pub flow_capacity: u64,
}

impl App {
    /// Asks the engine, on a blocking thread.
    async fn ask(self: &Arc<Self>, request: ControlRequest) -> Result<Reply, String> {
        let Some(tx) = self.control.clone() else {
            return Err("detection is off in this sensor: there is no engine to ask".into());
        };
        tokio::task::spawn_blocking(move || {
            let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
            tx.send_timeout(Call { request, reply: reply_tx }, IO_TIMEOUT)
                .map_err(|_| "the sensor is busy or stopping; try again".to_owned())?;
            reply_rx.recv_timeout(IO_TIMEOUT).map_err(|_| "the sensor did not answer in time".to_owned())
        })
        .await
        .map_err(|e| format!("the request failed: {e}"))?
    }
}

/// The router, authentication included.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(incidents))
        .route("/alerts", get(alerts))
        .route("/alert/{id}", get(alert))
        .route("/incident/{id}", get(incident))
        .route("/host/{ip}", get(host))
        .route("/hosts", get(hosts))
        .route("/health", get(health))
        .route("/verdict", post(verdict))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), authenticate))
        .route("/login", get(login))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn authenticate(State(app): State<Arc<App>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    if app.auth.allows(&headers) {
        let mut res = next.run(req).await;
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'",
            ),
        );
        res
    } else {
        let page = pages::message(
            "Authentication required",
            "Open /login?token=TOKEN once with the token of console.token_file, or send \
             Authorization: Bearer TOKEN.",
        );
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Html(page.into_string()))
            .into_response()
    }
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    token: String,
}

async fn login(State(app): State<Arc<App>>, Query(q): Query<LoginQuery>) -> Response {
    match q {
        q if app.auth.token_ok(&q.token) => {
            ([(header::SET_COOKIE, app.auth.set_cookie())], Redirect::to("/")).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            Html(pages::message("Login refused", "That is not the console's token.").into_string()),
        )
            .into_response(),
    }
}

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Html(pages::message("Not found", what).into_string())).into_response()
}

async fn incidents(State(app): State<Arc<App>>) -> Html<String> {
    Html(pages::incidents(&app.store.incidents(), &app.store.alerts(), app.store.raised()).into_string())
}

async fn alerts(State(app): State<Arc<App>>) -> Html<String> {
    Html(pages::alerts(&app.store.alerts()).into_string())
}

async fn alert(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.store.alert(&id) {
        Some(a) => {
            Html(pages::alert(&a, &app.store.given_on(&id), app.auth.csrf()).into_string()).into_response()
        }
        None => {
            not_found("The console does not remember that alert (it keeps the newest console.max_alerts).")
        }
    }
}

async fn incident(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.store.incidents().into_iter().find(|i| i.id == id) {
        Some(i) => Html(pages::incident(&i, &app.store.alerts_in(&id), app.auth.csrf()).into_string())
            .into_response(),
        None => not_found("The console does not remember that incident."),
    }
}

async fn host(State(app): State<Arc<App>>, Path(ip): Path<String>) -> Response {
    let Ok(ip) = ip.parse::<IpAddr>() else { return not_found("That is not an IP address.") };
    match app.ask(ControlRequest::Host { host: ip }).await {
        Ok(Reply::Host { view: Some(view) }) => {
            Html(pages::host(&view, &app.store.alerts_of(ip)).into_string()).into_response()
        }
        Ok(Reply::Host { view: None }) => not_found("The engine does not track that host."),
        Ok(_) => unavailable("the sensor answered something else"),
        Err(e) => unavailable(&e),
    }
}

fn unavailable(why: &str) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Html(pages::message("Not available", why).into_string()))
        .into_response()
}

async fn hosts(State(app): State<Arc<App>>) -> Response {
    match app.ask(ControlRequest::Hosts).await {
        Ok(Reply::Hosts { hosts }) => Html(pages::hosts(&hosts).into_string()).into_response(),
        Ok(_) => unavailable("the sensor answered something else"),
        Err(e) => unavailable(&e),
    }
}

async fn health(State(app): State<Arc<App>>) -> Html<String> {
    let report = match app.ask(ControlRequest::Report).await {
        Ok(Reply::Report { report }) => Some(report),
        _ => None,
    };
    Html(pages::health(&app.hub.snapshot(), app.flow_capacity, report.as_ref()).into_string())
}

#[derive(Debug, Deserialize)]
struct VerdictForm {
    id: String,
    csrf: String,
    verdict: String,
    reason: String,
    author: String,
    #[serde(default)]
    expires_days: String,
}

async fn verdict(State(app): State<Arc<App>>, Form(form): Form<VerdictForm>) -> Response {
    if !app.auth.csrf_ok(&form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            Html(pages::message("Refused", "The form's CSRF token is wrong; reload the page.").into_string()),
        )
            .into_response();
    }
    let expires_s = match form.expires_days.trim() {
        "" => None,
        d => match d.parse::<u64>() {
            Ok(days) => Some(days.saturating_mul(86_400)),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Html(pages::message("Refused", "expires (days) must be a whole number").into_string()),
                )
                    .into_response();
            }
        },
    };
    let request = crate::detect::verdict::Request {
        id: form.id.clone(),
        verdict: form.verdict.clone(),
        reason: form.reason,
        author: form.author.clone(),
        expires_s,
        host_cidr: None,
    };
    let back = if app.store.alert(&form.id).is_some() {
        format!("/alert/{}", form.id)
    } else {
        format!("/incident/{}", form.id)
    };
    match app.ask(ControlRequest::Verdict { verdict: request }).await {
        Ok(Reply::Applied { outcome }) => {
            let text = outcome.summary();
            app.store.note_given(Given {
                id: form.id,
                verdict: form.verdict,
                author: form.author,
                outcome: text,
            });
            Redirect::to(&back).into_response()
        }
        Ok(Reply::Error { message }) => {
            (StatusCode::BAD_REQUEST, Html(pages::message("Verdict refused", &message).into_string()))
                .into_response()
        }
        Ok(_) => unavailable("the sensor answered something else"),
        Err(e) => unavailable(&e),
    }
}

/// Accepts connections until `stop` is notified; each is served on its own task.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    stop: Arc<tokio::sync::Notify>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
        let (stream, _peer) = tokio::select! {
            () = stop.notified() => return,
            conn = listener.accept() => match conn {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("nbad-sensor: console: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT);
                b
            };
            // Errors of one connection (a client that went away, a failed handshake) concern
            // that client only.
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    if let Ok(Ok(stream)) = tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await
                    {
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
            drop(permit);
        });
    }
}
