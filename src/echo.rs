//! `strangler echo`: a small backend that describes every request it gets, for
//! the demo, docker-compose and tests.
//!
//! `GET /health` and `GET /readyz` answer 200 whatever `--fail-path` says, so
//! `strangler health --admin <echo address>` works as a container health check
//! for an echo backend too (it has no admin API of its own).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::body::{self, ProxyBody};
use crate::server::{self, Limits};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// What an echo backend is told at start.
#[derive(Debug, Clone)]
pub struct EchoOptions {
    /// Reported as `name` in every answer.
    pub name: String,
    /// Requests whose path is, or is under, one of these get a 503.
    pub fail_paths: Vec<String>,
}

/// Serves echo answers on `listener` forever, with the proxy's own listener
/// (connection limits, HTTP/1.1 and h2c).
pub async fn serve(listener: TcpListener, options: EchoOptions) {
    let options = Arc::new(options);
    let service = tower::service_fn(move |req| {
        let options = options.clone();
        async move { Ok::<_, Infallible>(answer(&options, req).await) }
    });
    let limits = Limits {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_header_size: 64 << 10,
        max_connections: 10_000,
        shutdown_timeout: Duration::ZERO,
    };
    server::serve(
        listener,
        server::Counting(service),
        limits,
        None,
        std::future::pending(),
    )
    .await;
}

/// Binds `addr` and serves echo answers on it in a background task, returning
/// the bound address (useful with port 0).
pub async fn spawn(addr: SocketAddr, options: EchoOptions) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(serve(listener, options));
    Ok(local)
}

async fn answer(options: &EchoOptions, req: Request<Incoming>) -> Response<ProxyBody> {
    let (parts, mut incoming) = req.into_parts();
    // Count the body without holding it.
    let mut body_length: u64 = 0;
    while let Some(Ok(frame)) = incoming.frame().await {
        if let Some(data) = frame.data_ref() {
            body_length += data.len() as u64;
        }
    }
    let path = parts.uri.path();
    if parts.method == http::Method::GET && is_health_path(path) {
        return json_response(
            StatusCode::OK,
            json!({"name": options.name, "status": "ok"}),
        );
    }
    let failing = options.fail_paths.iter().any(|p| under(path, p));
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                headers.insert(name.as_str().to_owned(), value);
            }
        }
    }
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(
        status,
        json!({
            "name": options.name,
            "method": parts.method.as_str(),
            "path": path,
            "query": parts.uri.query(),
            "headers": headers,
            "body_length": body_length,
            "failing": failing,
        }),
    )
}

/// The paths answered 200 as a health check: `/health` (SPEC §1) and `/readyz`
/// (what `strangler health` asks for).
fn is_health_path(path: &str) -> bool {
    path == "/health" || path == "/readyz"
}

/// Segment-aware prefix test: `/a` covers `/a` and `/a/b`, not `/ab`.
fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn json_response(status: StatusCode, value: Value) -> Response<ProxyBody> {
    let mut text = value.to_string();
    text.push('\n');
    body::response(status, "application/json", text)
}

#[cfg(test)]
mod tests {
    use super::{is_health_path, under};

    #[test]
    fn health_and_readyz_are_health_paths() {
        assert!(is_health_path("/health"));
        assert!(is_health_path("/readyz"));
        assert!(!is_health_path("/healthz"));
        assert!(!is_health_path("/readyz/x"));
    }

    #[test]
    fn fail_path_is_segment_aware() {
        assert!(under("/api/pay", "/api/pay"));
        assert!(under("/api/pay/x", "/api/pay"));
        assert!(under("/api/pay/x", "/api/pay/"));
        assert!(!under("/api/payment", "/api/pay"));
        assert!(under("/anything", "/"));
    }
}
