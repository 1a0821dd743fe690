//! The two listeners and the gate in front of them: bearer-token auth, the account check, the
//! per-token rate limit with `Ratelimit` headers, injected faults, and the request counters.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use super::EmulatorConfig;
use super::control::Fault;
use super::envelope::{ApiError, ReadOnly};
use super::routes::{RouteLabel, router};
use super::state::Shared;

/// A running emulator. Dropping it stops both listeners.
pub struct RunningEmulator {
    /// The v4 base URL (what `CLOUDFLARE_API_BASE_URL` takes), ending in `/client/v4`.
    pub api_url: String,
    /// R2's S3 endpoint.
    pub s3_url: String,
    pub account_id: String,
    pub token: String,
    pub r2_access_key_id: String,
    pub r2_secret_access_key: String,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningEmulator {
    /// The line `cfdr emulator` prints once it accepts requests.
    pub fn ready_line(&self) -> String {
        format!(
            "ready api={} s3={} account={}",
            self.api_url, self.s3_url, self.account_id
        )
    }

    /// The emulator's own origin (control routes live there, outside `/client/v4`).
    pub fn origin(&self) -> &str {
        self.api_url.trim_end_matches("/client/v4")
    }

    /// Stops accepting and waits for the accept loops to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn wait_for_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = ctrl_c => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        self.stop().await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

pub async fn serve(config: EmulatorConfig, shared: Arc<Shared>) -> anyhow::Result<RunningEmulator> {
    let api = TcpListener::bind(config.listen)
        .await
        .map_err(|e| bind_error(config.listen, "--listen", e))?;
    let s3 = TcpListener::bind(config.s3_listen)
        .await
        .map_err(|e| bind_error(config.s3_listen, "--s3-listen", e))?;
    let origin = format!("http://{}", api.local_addr()?);
    let _ = shared.api_url.set(origin.clone());
    let s3_url = format!("http://{}", s3.local_addr()?);
    let (stop, stopped) = watch::channel(false);

    let app = router(shared.clone());
    let api_shared = shared.clone();
    let api_task = accept_loop(api, stopped.clone(), move |req| {
        let (shared, app) = (api_shared.clone(), app.clone());
        async move { api_gate(shared, app, req).await }
    });

    let s3_endpoint = Arc::new(super::r2::s3::Endpoint::new(
        shared.r2.clone(),
        &shared.r2_access_key_id,
        &shared.r2_secret_access_key,
    ));
    let s3_shared = shared.clone();
    let s3_task = accept_loop(s3, stopped.clone(), move |req| {
        let (shared, endpoint) = (s3_shared.clone(), s3_endpoint.clone());
        async move { s3_gate(shared, endpoint, req).await }
    });

    let sweeper = tokio::spawn(sweep(shared.clone(), stopped.clone()));
    Ok(RunningEmulator {
        api_url: format!("{origin}/client/v4"),
        s3_url,
        account_id: config.account_id.clone(),
        token: config.token.clone(),
        r2_access_key_id: config.r2_access_key_id.clone(),
        r2_secret_access_key: config.r2_secret_access_key.clone(),
        stop,
        tasks: vec![api_task, s3_task, sweeper],
    })
}

/// Once a minute: expired KV keys and presigned URLs go for good.
async fn sweep(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stopped.changed() => break,
        }
        let _ = shared.store.kv_purge_expired(super::clock::now_secs());
        let now = std::time::Instant::now();
        super::control::lock(&shared.transfers).retain(|_, t| t.expires > now);
    }
}

fn bind_error(addr: SocketAddr, flag: &str, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot listen on `{addr}`: {e}; pass another address with {flag} (port 0 picks a free one)"
    )
}

/// The connection is closed without an answer (an injected dropped connection).
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by injected fault")
    }
}

impl std::error::Error for Dropped {}

fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
    handler: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response<Body>, Dropped>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let socket = tokio::select! {
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                _ = stopped.changed() => break,
            };
            // Headers and body go out as separate writes: without this, Nagle's algorithm and
            // the client's delayed ACK hold every small answer back by 40 ms.
            let _ = socket.set_nodelay(true);
            let handler = handler.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(&handler);
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = stopped.changed() => conn.as_mut().graceful_shutdown(),
                }
            });
        }
    })
}

/// Whether a request may change state: anything but GET, HEAD and OPTIONS, except KV's bulk
/// get (a POST that only reads) and the POSTs a handler marked [`ReadOnly`], so that a
/// read-only run can be shown to write nothing.
fn is_write(method: &Method, route: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !route.ends_with("/bulk/get")
}

fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    // The legacy key pair: the key stands in for the token.
    req.headers()
        .get("x-auth-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn api_gate(
    shared: Arc<Shared>,
    app: Router,
    req: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let bytes_in = content_length(req.headers());
    let is_api = path.starts_with("/client/v4/");
    let is_control = path.starts_with("/__emulator/");

    if is_api || is_control {
        let token = bearer(&req);
        let denied = match token.as_deref() {
            None => Some(ApiError::new(
                StatusCode::UNAUTHORIZED,
                10000,
                "Authentication error: no API token was sent",
            )),
            Some(t) if t != shared.token => Some(ApiError::new(
                StatusCode::FORBIDDEN,
                10000,
                "Authentication error: the API token is not valid",
            )),
            Some(_) => None,
        };
        if let Some(err) = denied {
            return Ok(finish(
                &shared,
                &method,
                "(unauthenticated)",
                bytes_in,
                err.into_response(),
            ));
        }
        if is_api {
            let segments: Vec<&str> = path.split('/').collect();
            if segments.get(3) == Some(&"accounts")
                && segments.get(4).is_some_and(|a| *a != shared.account_id)
            {
                let err = ApiError::new(
                    StatusCode::FORBIDDEN,
                    9109,
                    format!(
                        "Unauthorized to access requested resource: account `{}`",
                        segments[4]
                    ),
                );
                return Ok(finish(
                    &shared,
                    &method,
                    "(wrong account)",
                    bytes_in,
                    err.into_response(),
                ));
            }
            let verdict = shared.limiter.check(token.as_deref().unwrap_or_default());
            let limit_headers = |r: &mut Response<Body>| {
                let h = r.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "\"default\";r={};t={}",
                    verdict.remaining, verdict.reset_secs
                )) {
                    h.insert("ratelimit", v);
                }
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "\"default\";q={};w={}",
                    verdict.limit, verdict.window_secs
                )) {
                    h.insert("ratelimit-policy", v);
                }
            };
            if !verdict.allowed {
                let mut r = too_many(verdict.reset_secs);
                limit_headers(&mut r);
                return Ok(finish(&shared, &method, "(rate limited)", bytes_in, r));
            }
            let (latency, fault) = shared.faults.roll(method.as_str(), &path);
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let mut response = match fault {
                Fault::Drop => {
                    shared.stats.fault("REST", "dropped");
                    return Err(Dropped);
                }
                Fault::TooMany { retry_after } => {
                    shared.stats.fault("REST", "429");
                    too_many(retry_after)
                }
                Fault::ServerError { status } => {
                    shared.stats.fault("REST", "5xx");
                    ApiError::new(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        10000,
                        "internal error (injected by the emulator)",
                    )
                    .into_response()
                }
                Fault::Truncate => {
                    shared.stats.fault("REST", "truncated");
                    truncate(call(&app, req).await).await
                }
                Fault::None => call(&app, req).await,
            };
            limit_headers(&mut response);
            let label = route_of(&response);
            return Ok(finish(&shared, &method, &label, bytes_in, response));
        }
        let response = call(&app, req).await;
        return Ok(response);
    }
    let response = if path.starts_with("/__signed/") {
        // Presigned transfers (D1 export downloads, import uploads) cross the same network.
        let (latency, fault) = shared.faults.roll(method.as_str(), &path);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Fault::Drop => {
                shared.stats.fault("signed URL", "dropped");
                return Err(Dropped);
            }
            Fault::TooMany { retry_after } => {
                shared.stats.fault("signed URL", "429");
                too_many(retry_after)
            }
            Fault::ServerError { status } => {
                shared.stats.fault("signed URL", "5xx");
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "injected by the emulator",
                )
                    .into_response()
            }
            Fault::Truncate => {
                shared.stats.fault("signed URL", "truncated");
                truncate(call(&app, req).await).await
            }
            Fault::None => call(&app, req).await,
        }
    } else {
        call(&app, req).await
    };
    let label = route_of(&response);
    Ok(finish(&shared, &method, &label, bytes_in, response))
}

fn route_of(response: &Response<Body>) -> String {
    response
        .extensions()
        .get::<RouteLabel>()
        .map(|l| l.0.clone())
        .unwrap_or_else(|| "(no route)".into())
}

async fn call(app: &Router, req: Request<Incoming>) -> Response<Body> {
    match app.clone().oneshot(req.map(Body::new)).await {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

fn too_many(retry_after: u64) -> Response<Body> {
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        971,
        "Please wait and consider throttling your request speed",
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Sends half the body under the full `Content-Length`, then fails the stream: the client sees
/// a body cut short and a closed connection.
async fn truncate(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    // An empty answer (a PUT's) is cut too: it promises a byte it never sends.
    parts.headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(bytes.len().max(1)),
    );
    // The pause lets the head and the first half reach the client before the body ends short
    // of its `Content-Length`, which makes hyper close the connection.
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(half), 1)),
                _ => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    None
                }
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

fn finish(
    shared: &Shared,
    method: &Method,
    route: &str,
    bytes_in: u64,
    response: Response<Body>,
) -> Response<Body> {
    let bytes_out = http_body::Body::size_hint(response.body())
        .exact()
        .unwrap_or_else(|| content_length(response.headers()));
    shared.stats.record(
        &format!("{method} {route}"),
        is_write(method, route) && response.extensions().get::<ReadOnly>().is_none(),
        response.status().as_u16(),
        bytes_in,
        bytes_out,
    );
    response
}

async fn s3_gate(
    shared: Arc<Shared>,
    endpoint: Arc<super::r2::s3::Endpoint>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let method = req.method().clone();
    let label = super::r2::s3::route_label(req.uri().path(), req.uri().query());
    let class = super::r2::s3::fault_class(&method, &label);
    let bytes_in = content_length(req.headers());
    let (latency, fault) = shared.faults.roll(req.method().as_str(), req.uri().path());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let s3_error = |status: StatusCode, code: &str| {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the emulator</Message></Error>"
        );
        (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
    };
    let response = match fault {
        Fault::Drop => {
            shared.stats.fault(class, "dropped");
            return Err(Dropped);
        }
        Fault::TooMany { retry_after } => {
            shared.stats.fault(class, "429");
            let mut r = s3_error(StatusCode::TOO_MANY_REQUESTS, "SlowDown");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        Fault::ServerError { status } => {
            shared.stats.fault(class, "5xx");
            s3_error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "InternalError",
            )
        }
        Fault::Truncate | Fault::None => {
            let r = endpoint.handle(req).await;
            if fault == Fault::Truncate {
                shared.stats.fault(class, "truncated");
                truncate(r).await
            } else {
                r
            }
        }
    };
    Ok(finish(&shared, &method, &label, bytes_in, response))
}
