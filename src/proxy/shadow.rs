//! Shadow traffic on the request path (SPEC §3.7): whether a request is
//! mirrored ([`plan`], before the serving attempt), and once the serving
//! backend has answered, the background task that sends the request to the
//! other side, reads both answers and compares them ([`start`]).
//!
//! The client never waits for the shadow: the task is spawned, never
//! awaited, and the client's answer streams on while a copy of its body (up
//! to `max_body`, by reference count) is kept for the comparison. Shadow
//! requests are sent with [`attempt::send`] alone: they are recorded in no
//! attempt list, no backend health, no route counter, only in the route's
//! [`ShadowState`] and `strangler_shadow_total`.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::attempt::{self, Attempts, Connection, Failure};
use super::copy::{Copy, CopyBudget};
use super::exchange::Observer;
use super::fallback::Forwarded;
use super::outgoing::Outgoing;
use crate::backend::Backend;
use crate::body::{self, BoxError, ProxyBody};
use crate::config::ShadowConfig;
use crate::headers::X_REQUEST_ID;
use crate::shadow::compare::{Answer, Rules};
use crate::shadow::{Sample, ShadowResult, ShadowState, Side, SkipReason, Slot};
use crate::snapshot::{CompiledRoute, Snapshot};
use crate::stats::Label;

/// On every mirrored request, whatever `debug_headers` says (SPEC §6).
pub(crate) static X_STRANGLER_SHADOW: HeaderName = HeaderName::from_static("x-strangler-shadow");

/// A served answer whose body has not been read to its end by then (a slow
/// client) is not compared.
const SERVED_WAIT: Duration = Duration::from_secs(60);

/// A request picked for mirroring, holding its in-flight slot.
pub(super) struct Plan<'r> {
    route: &'r CompiledRoute,
    config: Arc<ShadowConfig>,
    recorder: Recorder,
    slot: Slot,
    /// Also sent again to the serving backend, to learn noise.
    twin: bool,
    /// The upstream headers, kept before the serving attempt may take them.
    headers: HeaderMap,
}

impl Plan<'_> {
    /// With the upstream request's headers, before the serving attempt.
    pub(super) fn with_headers(self, headers: HeaderMap) -> Self {
        Plan { headers, ..self }
    }

    /// The largest request body that is mirrored.
    pub(super) fn max_body(&self) -> u64 {
        self.config.max_body
    }

    /// The request failed on the client's side: nothing to mirror.
    pub(super) fn abandon(self) {
        self.recorder.skip(SkipReason::Served);
    }
}

/// Counts a route's shadow results in its state and the metrics.
#[derive(Clone)]
struct Recorder {
    state: Arc<ShadowState>,
    label: Label,
    observer: Option<Arc<dyn Observer>>,
}

impl Recorder {
    fn result(&self, result: ShadowResult) {
        self.state.count(result);
        if let Some(observer) = &self.observer {
            observer.shadow(&self.label, result);
        }
    }

    fn skip(&self, reason: SkipReason) {
        self.state.skip(reason);
        if let Some(observer) = &self.observer {
            observer.shadow(&self.label, ShadowResult::Skipped);
        }
    }
}

/// Whether this request is mirrored: the route has `[routes.shadow]`, the
/// draw falls within `percent`, the method is mirrored, and a slot is free
/// (else the skip is counted). Called before the serving attempt, which must
/// then keep a copy of the body.
pub(super) fn plan<'r>(
    route: Option<&'r CompiledRoute>,
    method: &Method,
    content_length: Option<u64>,
    upgrade: bool,
    observer: Option<&Arc<dyn Observer>>,
) -> Option<Plan<'r>> {
    let config = route?.config.shadow.as_ref()?;
    // A route at 0% costs this comparison and nothing else.
    if config.percent_bp == 0 || upgrade || !config.methods.contains(method) {
        return None;
    }
    if fastrand::u16(..10_000) >= config.percent_bp {
        return None;
    }
    let route = route?;
    let recorder = Recorder {
        state: route.handles.shadow.clone()?,
        label: route.handles.label.clone(),
        observer: observer.cloned(),
    };
    if content_length.is_some_and(|n| n > config.max_body) {
        recorder.skip(SkipReason::Body);
        return None;
    }
    let Some(slot) = recorder.state.enter(config.max_inflight) else {
        recorder.skip(SkipReason::MaxInflight);
        return None;
    };
    let twin = config.compare
        && config.noise_sample_bp > 0
        && fastrand::u16(..10_000) < config.noise_sample_bp;
    Some(Plan {
        route,
        config: config.clone(),
        recorder,
        slot,
        twin,
        headers: HeaderMap::new(),
    })
}

/// After the serving attempt: sends the request to the other side (and
/// again to the serving side when noise is sampled) in a spawned task, and
/// keeps a copy of the served answer's body for it.
pub(super) fn start(
    plan: Plan<'_>,
    snapshot: &Snapshot,
    tasks: &TaskTracker,
    budget: &CopyBudget,
    request: &Outgoing<'_>,
    forwarded: &mut Forwarded,
) {
    let Plan {
        route,
        config,
        recorder,
        slot,
        twin,
        headers,
    } = plan;
    let Ok(response) = &mut forwarded.result else {
        recorder.skip(SkipReason::Served);
        return;
    };
    let Some(request_body) = request.copy.whole(config.max_body) else {
        let reason = if budget.available_permits() == 0 {
            SkipReason::Budget
        } else {
            SkipReason::Body
        };
        recorder.skip(reason);
        return;
    };
    let route_config = &route.config;
    let new_path = crate::route::rewrite_path(route_config, request.path);
    let (served, served_path, other, other_path) = if forwarded.backend == route_config.legacy {
        let path = Cow::Borrowed(request.path);
        (Side::Legacy, path, route_config.new, new_path)
    } else {
        let path = Cow::Borrowed(request.path);
        (Side::New, new_path, route_config.legacy, path)
    };
    let mut outgoing = Outgoing {
        method: request.method.clone(),
        path: request.path,
        query: request.query,
        headers,
        client_host: request.client_host,
        te_trailers: request.te_trailers,
        copy: Copy::Unavailable,
        // No route: a shadow stays out of the route's statistics.
        route: None,
        fallback: request.fallback,
        replayable: false,
        attempts: Attempts::default(),
    };
    let request_id = outgoing
        .headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let backend = |id: crate::config::BackendId| snapshot.backends()[id.index()].clone();
    let mut build = |backend: &Backend, path: &str, last: bool| {
        let mut built = outgoing.build(backend, path, body::full(request_body.clone()), last);
        if let Ok(built) = &mut built {
            built
                .headers_mut()
                .insert(&X_STRANGLER_SHADOW, HeaderValue::from_static("1"));
        }
        built.ok()
    };
    let shadow_backend = backend(other);
    let Some(shadow_request) = build(&shadow_backend, &other_path, !twin) else {
        recorder.result(ShadowResult::Error);
        return;
    };
    let twin = if twin {
        let served_backend = backend(forwarded.backend);
        build(&served_backend, &served_path, true).map(|r| (served_backend, r))
    } else {
        None
    };
    let (sender, receiver) = oneshot::channel();
    let served_head = (response.status().as_u16(), response.headers().clone());
    let taken = std::mem::replace(response, Response::new(body::empty()));
    *response = taken.map(|inner| {
        body::boxed(Kept {
            inner,
            kept: Some(Vec::new()),
            len: 0,
            max: config.max_body,
            sender: Some(sender),
        })
    });
    let job = Job {
        recorder,
        config,
        _slot: slot,
        served,
        method: request.method.to_string(),
        path: match request.query {
            Some(query) => format!("{}?{query}", request.path),
            None => request.path.to_owned(),
        },
        request_id,
        served_head,
        served_body: receiver,
        shadow: (shadow_backend, shadow_request),
        twin,
    };
    tasks.spawn(job.run());
}

/// One mirrored request, from sending to counting its result.
struct Job {
    recorder: Recorder,
    config: Arc<ShadowConfig>,
    /// Held until the job ends.
    _slot: Slot,
    served: Side,
    method: String,
    path: String,
    request_id: Option<String>,
    served_head: (u16, HeaderMap),
    /// The served answer's body once the client read it: `None` when over
    /// `max_body`; dropped unsent when the body was cut off.
    served_body: oneshot::Receiver<Option<Bytes>>,
    shadow: (Arc<Backend>, Request<ProxyBody>),
    twin: Option<(Arc<Backend>, Request<ProxyBody>)>,
}

impl Job {
    async fn run(self) {
        let max = self.config.max_body;
        let (shadow_backend, shadow_request) = self.shadow;
        let twin = async {
            match self.twin {
                Some((backend, request)) => Some(fetch(&backend, request, max).await),
                None => None,
            }
        };
        let (served_body, shadow, twin) = tokio::join!(
            tokio::time::timeout(SERVED_WAIT, self.served_body),
            fetch(&shadow_backend, shadow_request, max),
            twin,
        );
        let recorder = &self.recorder;
        let route = recorder.label.as_str();
        let request_id = self.request_id.as_deref();
        let Ok(Ok(served_body)) = served_body else {
            recorder.skip(SkipReason::Served);
            return;
        };
        let (status, headers) = self.served_head;
        let served = Answer {
            status,
            headers,
            body: served_body,
        };
        let shadow = match shadow {
            Ok(answer) if answer.status < 500 || served.status >= 500 => answer,
            outcome => {
                let error = outcome.map_or_else(|e| e.to_owned(), |a| a.status.to_string());
                debug!(route, backend = %shadow_backend.config.name, error, request_id, "shadow request failed");
                recorder.result(ShadowResult::Error);
                return;
            }
        };
        if !self.config.compare {
            return;
        }
        let rules = Rules {
            ignore_headers: &self.config.ignore_headers,
            ignore_json: &self.config.ignore_json,
        };
        let state = &recorder.state;
        if let Some(Ok(twin)) = twin {
            let learned = state.learn(&served, &twin, rules);
            if !learned.is_empty() {
                info!(route, noise = ?learned, "shadow noise learned");
            }
        }
        let differences = state.compare(&served, &shadow, rules);
        if differences.is_empty() {
            recorder.result(ShadowResult::Match);
            return;
        }
        if let Some(suppressed) = state.may_log(Instant::now()) {
            info!(
                route,
                method = self.method,
                path = self.path,
                served = ?self.served,
                served_status = served.status,
                shadow_status = shadow.status,
                differences = differences.len(),
                first = differences[0].place.name(),
                suppressed,
                request_id,
                "shadow mismatch"
            );
        }
        state.mismatch(Sample {
            at: SystemTime::now(),
            method: self.method,
            path: self.path,
            served: self.served,
            served_status: served.status,
            shadow_status: shadow.status,
            differences,
        });
        recorder.result(ShadowResult::Mismatch);
    }
}

/// Sends a shadow request and reads its answer, up to `max` bytes of body
/// (more: the body is not kept), each within the backend's `timeout`.
async fn fetch(
    backend: &Backend,
    request: Request<ProxyBody>,
    max: u64,
) -> Result<Answer, &'static str> {
    let response = attempt::send(backend, Connection::Pooled, request)
        .await
        .map_err(|failure| match failure {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Reset | Failure::Client(_) => "reset",
        })?;
    let (parts, mut body) = response.into_parts();
    let read = async {
        let mut kept = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| "reset")?;
            if let Some(data) = frame.data_ref() {
                if (kept.len() + data.len()) as u64 > max {
                    return Ok::<_, &'static str>(None);
                }
                kept.extend_from_slice(data);
            }
        }
        Ok(Some(kept.freeze()))
    };
    let body = tokio::time::timeout(backend.config.timeout, read)
        .await
        .map_err(|_| "timeout")??;
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// The served answer's body on its way to the client, with a copy kept (by
/// reference count) up to `max` bytes, handed to the shadow task at its end.
struct Kept {
    inner: ProxyBody,
    /// `None` once past `max`.
    kept: Option<Vec<Bytes>>,
    len: u64,
    max: u64,
    sender: Option<oneshot::Sender<Option<Bytes>>>,
}

impl Kept {
    fn finish(&mut self) {
        if let Some(sender) = self.sender.take() {
            let whole = self.kept.take().map(|chunks| chunks.concat().into());
            let _ = sender.send(whole);
        }
    }
}

impl Body for Kept {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.len += data.len() as u64;
                    if this.len > this.max {
                        this.kept = None;
                    } else if let Some(kept) = &mut this.kept {
                        kept.push(data.clone());
                    }
                }
            }
            Poll::Ready(None) => this.finish(),
            // Cut off: nothing to compare.
            Poll::Ready(Some(Err(_))) => this.sender = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Kept {
    /// hyper stops polling a body of known length once it was all sent.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}
