//! `strangler health`: is the admin API ready? For container health checks in
//! images without curl.

use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The whole check, connect included, must finish within this.
const TIMEOUT: Duration = Duration::from_secs(3);

/// True if `GET http://{admin}/readyz` answers 200.
pub async fn check(admin: &str) -> bool {
    let Ok(request) =
        Request::get(format!("http://{admin}/readyz")).body(Empty::<bytes::Bytes>::new())
    else {
        return false;
    };
    let client = Client::builder(TokioExecutor::new()).build_http();
    match tokio::time::timeout(TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) => response.status() == StatusCode::OK,
        _ => false,
    }
}

/// `GET http://{admin}{path}` with an optional bearer token: the status and
/// the whole body, or why there is none. For `explain --admin` and `diff`.
pub async fn fetch(
    admin: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, bytes::Bytes), String> {
    use http_body_util::BodyExt;
    let url = format!("http://{admin}{path}");
    let mut request = Request::get(&url);
    if let Some(token) = token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let exchange = async {
        let response = client.request(request).await.map_err(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            format!("cannot reach the admin API at {admin}: {e}{cause}")
        })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("{url}: no answer within {}s", TIMEOUT.as_secs())),
    }
}

/// [`fetch`] of a JSON document that must answer 200.
pub async fn fetch_json(
    admin: &str,
    path: &str,
    token: Option<&str>,
) -> Result<serde_json::Value, String> {
    let (status, body) = fetch(admin, path, token).await?;
    if status != StatusCode::OK {
        return Err(format!(
            "http://{admin}{path} answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("http://{admin}{path}: not JSON: {e}"))
}
