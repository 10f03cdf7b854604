//! `[metrics] listen`: otpd's counters over HTTP on a loopback address, for a Prometheus server
//! on the same host (or a tunnel to it) to scrape; off unless configured, and read at start.
//!
//! HTTP is hyper's (HTTP/1.1, no keep-alive): `GET /metrics` (or `HEAD`) answers the text
//! `otpctl metrics` prints, anything else 404 or 405. Any local user can connect, and the port
//! shares the runtime's thread with otpd's socket, so no one may use it to hold otpd up: it
//! accepts at most one connection per [`ACCEPT_EVERY`] (a flood waits in the kernel's backlog,
//! not on otpd's thread), serves at most [`MAX_CONNECTIONS`] at once (more are closed at once),
//! each for at most [`DEADLINE`], and the counters hold no user name or address.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::text::escape_for_log;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::state::Shared;

/// Connections served at once; a scraper needs one.
pub const MAX_CONNECTIONS: usize = 4;

/// How long one connection may take, from accept to the last byte of the answer.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The least time between two accepted connections: a scraper comes every few seconds.
pub const ACCEPT_EVERY: Duration = Duration::from_millis(50);

/// The exposition format's content type.
const CONTENT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` on `address` until the task is aborted. A port that cannot be bound is
/// logged and the counters are not served; logins are not affected.
pub async fn serve(shared: Arc<Shared>, address: SocketAddr) {
    let listener = match TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(
                "[metrics] listen {address}: {}; the metrics are not served",
                escape_for_log(&e.to_string())
            );
            return;
        }
    };
    tracing::info!("serving metrics on http://{address}/metrics");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut pace = tokio::time::interval(ACCEPT_EVERY);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        pace.tick().await;
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(
                    "[metrics] accept failed: {}",
                    escape_for_log(&e.to_string())
                );
                continue;
            }
        };
        // Busy: closed at once rather than queued.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request| {
                let answer = respond(&shared, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(DEADLINE, connection).await;
        });
    }
}

/// The answer to one request.
fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (
            StatusCode::OK,
            crate::metrics::exposition(shared, &shared.active()),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD\n".to_string(),
        ),
        _ => (StatusCode::NOT_FOUND, "only /metrics\n".to_string()),
    };
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    let headers = answer.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
    }
    answer
}
