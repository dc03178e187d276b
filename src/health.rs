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
