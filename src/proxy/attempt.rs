//! One backend's try at a request: sent within the backend's `timeout`,
//! classified, and tried once more on a fresh connection when the connection
//! broke before any answer (a pooled connection the backend had closed).

use http::{Request, Response};
use hyper_util::client::legacy::Client;
use tracing::debug;

use crate::backend::Backend;
use crate::body::ProxyBody;
use crate::config::BackendId;
use crate::error::{ProxyError, caused_by};

/// How an attempt on a backend ended: `strangler_attempts_total`'s `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Ok,
    /// A status the route counts as failure (`on_status`).
    Status,
    Connect,
    Timeout,
    Reset,
}

impl AttemptResult {
    pub fn label(self) -> &'static str {
        match self {
            AttemptResult::Ok => "ok",
            AttemptResult::Status => "status",
            AttemptResult::Connect => "connect",
            AttemptResult::Timeout => "timeout",
            AttemptResult::Reset => "reset",
        }
    }
}

/// Why an attempt got no usable answer.
#[derive(Debug)]
pub(super) enum Failure {
    /// The backend could not be reached: nothing was sent.
    Connect,
    /// No response head within the backend's `timeout`.
    Timeout,
    /// The backend closed the connection or reset the stream after the
    /// request was sent, before a whole answer.
    Reset,
    /// The client's side failed (body too large, stalled, broken off): not
    /// the backend's fault, and never tried again.
    Client(ProxyError),
}

impl Failure {
    /// The attempt's result, or `None` when the client, not the backend, failed.
    pub(super) fn result(&self) -> Option<AttemptResult> {
        match self {
            Failure::Connect => Some(AttemptResult::Connect),
            Failure::Timeout => Some(AttemptResult::Timeout),
            Failure::Reset => Some(AttemptResult::Reset),
            Failure::Client(_) => None,
        }
    }

    /// What the client gets when nothing else answers.
    pub(super) fn into_error(self) -> ProxyError {
        match self {
            Failure::Connect => ProxyError::Unreachable,
            Failure::Timeout => ProxyError::GatewayTimeout,
            Failure::Reset => ProxyError::BadGateway("backend closed the connection"),
            Failure::Client(error) => error,
        }
    }
}

/// At most this many attempts are recorded per request: new, its retry,
/// legacy, its retry.
const MAX_ATTEMPTS: usize = 4;

/// The attempts of one request, in order, without allocating.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attempts {
    log: [Option<(BackendId, AttemptResult)>; MAX_ATTEMPTS],
}

impl Attempts {
    pub(super) fn record(&mut self, backend: BackendId, result: AttemptResult) {
        if let Some(slot) = self.log.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((backend, result));
        }
    }

    /// Changes the last attempt's result: an answer cut off after its head.
    pub(super) fn amend_last(&mut self, result: Option<AttemptResult>) {
        if let (Some(Some((_, last))), Some(result)) = (
            self.log.iter_mut().rev().find(|slot| slot.is_some()),
            result,
        ) {
            *last = result;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (BackendId, AttemptResult)> + '_ {
        self.log.iter().map_while(|slot| *slot)
    }
}

/// Which of a backend's clients an attempt uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Connection {
    /// A pooled connection, or a new one when none is idle.
    Pooled,
    /// A new connection, never reused.
    Fresh,
}

impl From<ProxyError> for Failure {
    fn from(error: ProxyError) -> Failure {
        Failure::Client(error)
    }
}

/// Sends one request on `backend`, bounded by its `timeout` to the head.
pub(super) async fn send(
    backend: &Backend,
    connection: Connection,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, Failure> {
    let client: &Client<_, ProxyBody> = match connection {
        Connection::Pooled => &backend.client,
        Connection::Fresh => &backend.fresh,
    };
    let sent = tokio::time::timeout(backend.config.timeout, client.request(request)).await;
    match sent {
        Ok(Ok(response)) => Ok(response.map(crate::body::boxed)),
        Ok(Err(error)) if error.is_connect() => {
            debug!(backend = %backend.config.name, %error, "connect failed");
            Err(Failure::Connect)
        }
        Ok(Err(error)) => {
            if client_body_failed(&error) {
                return Err(Failure::Client(ProxyError::from_client_body(&error)));
            }
            debug!(backend = %backend.config.name, error = ?error, "backend exchange failed");
            Err(Failure::Reset)
        }
        Err(_) => Err(Failure::Timeout),
    }
}

/// Whether the exchange failed because reading the client's body failed
/// (hyper reports an error of the body it was sending as a user error).
fn client_body_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            return hyper.is_user() || caused_by::<crate::body::BodyStalled>(hyper);
        }
        source = e.source();
    }
    false
}
