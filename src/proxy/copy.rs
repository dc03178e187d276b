//! The request body on its way to a backend, with a bounded copy kept so the
//! request can be sent again: replayed to legacy, or retried on a fresh
//! connection.
//!
//! The body streams to the first backend as it arrives ([`tee`]); the copy
//! takes each chunk by reference count, not by copying bytes, and reserves its
//! size from the process-wide [`CopyBudget`] as it arrives, so nothing is held
//! for bytes nobody sent. The copy is given up, and its budget returned, as
//! soon as it grows past `max_body` or the budget is spent.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tracing::debug;

use crate::body::{self, BodyStalled, BoxError, ProxyBody};
use crate::error::ProxyError;

/// Bytes of request-body copies held at once, across all requests. Past it, a
/// body streams without a copy (and cannot be sent again): `max_body` bounds
/// one request, this bounds them all.
pub(crate) const COPY_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// The process-wide allowance of copied body bytes, one permit per byte.
pub(crate) type CopyBudget = Arc<Semaphore>;

/// The body was taken back for another attempt while this one still read it.
#[derive(Debug)]
struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("attempt abandoned")
    }
}

impl std::error::Error for Abandoned {}

/// Limits of one request's copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CopyLimits {
    /// The largest body that is copied.
    pub max: u64,
    /// The longest gap between two chunks of the client's body.
    pub idle: Duration,
}

/// The handle on a request body's copy, kept by the request path while the
/// first attempt streams the body.
#[derive(Debug)]
pub(crate) enum Copy {
    /// The request has no body: any attempt can send it again.
    Empty,
    /// The body is too large to copy, or the budget was spent.
    Unavailable,
    Kept(Arc<Mutex<State>>, CopyLimits),
}

/// Shared between the attempt's body ([`Tee`]) and the [`Copy`] handle. Only
/// one side polls at a time, so the lock is never contended.
#[derive(Debug)]
pub(crate) struct State {
    /// The client's body: read through the [`Tee`], taken back for a resend.
    source: Option<ProxyBody>,
    /// Every frame read so far; `None` once the copy was given up.
    frames: Option<Vec<Copied>>,
    len: u64,
    /// This copy's share of the budget, returned when the state is dropped.
    permit: Option<OwnedSemaphorePermit>,
    budget: CopyBudget,
    /// The largest body that is copied.
    max: u64,
    /// The client's body has ended.
    ended: bool,
}

#[derive(Debug, Clone)]
enum Copied {
    Data(Bytes),
    Trailers(HeaderMap),
}

/// Splits `body` into the body the first attempt sends and the handle on its
/// copy. A body declared larger than `limits.max` is not copied at all.
pub(crate) fn tee(
    body: ProxyBody,
    content_length: Option<u64>,
    limits: CopyLimits,
    budget: &CopyBudget,
) -> (ProxyBody, Copy) {
    if body.is_end_stream() {
        return (body, Copy::Empty);
    }
    if content_length.is_some_and(|n| n > limits.max) || budget.available_permits() == 0 {
        return (body, Copy::Unavailable);
    }
    let state = Arc::new(Mutex::new(State {
        source: Some(body),
        frames: Some(Vec::new()),
        len: 0,
        permit: None,
        budget: budget.clone(),
        max: limits.max,
        ended: false,
    }));
    let tee = Tee {
        state: state.clone(),
        idle: limits.idle,
        stall: None,
    };
    (body::boxed(tee), Copy::Kept(state, limits))
}

impl Copy {
    /// The whole body again, for another attempt. The current attempt loses
    /// the client's body; the rest of it, if the client is still sending, is
    /// read into the copy first. `Ok(None)` when the copy was given up (too
    /// large, or the budget spent).
    pub(crate) async fn resend(&self) -> Result<Option<ProxyBody>, ProxyError> {
        let (state, limits) = match self {
            Copy::Empty => return Ok(Some(body::empty())),
            Copy::Unavailable => return Ok(None),
            Copy::Kept(state, limits) => (state, limits),
        };
        let source = {
            let mut guard = lock(state);
            if guard.frames.is_none() {
                return Ok(None);
            }
            guard.source.take()
        };
        if let Some(mut source) = source {
            read_rest(state, &mut source, limits).await?;
        }
        let guard = lock(state);
        let Some(frames) = &guard.frames else {
            return Ok(None);
        };
        Ok(Some(body::boxed(Resend {
            frames: frames.clone().into_iter(),
            _state: state.clone(),
        })))
    }
}

impl Copy {
    /// The whole body, when the client has sent all of it, it was copied and
    /// it is at most `max` bytes; the copy stays as it is (shadow traffic,
    /// after the serving attempt). Trailers are left out.
    pub(super) fn whole(&self, max: u64) -> Option<Bytes> {
        let state = match self {
            Copy::Empty => return Some(Bytes::new()),
            Copy::Unavailable => return None,
            Copy::Kept(state, _) => lock(state),
        };
        // hyper stops polling a body of known length once it was all sent.
        let ended = state.ended || state.source.as_ref().is_some_and(Body::is_end_stream);
        let frames = state
            .frames
            .as_ref()
            .filter(|_| ended && state.len <= max)?;
        let mut whole = bytes::BytesMut::with_capacity(state.len as usize);
        for frame in frames {
            if let Copied::Data(data) = frame {
                whole.extend_from_slice(data);
            }
        }
        Some(whole.freeze())
    }
}

/// Reads what the client has not sent yet into the copy, chunk by chunk, each
/// within `limits.idle`.
async fn read_rest(
    state: &Arc<Mutex<State>>,
    source: &mut ProxyBody,
    limits: &CopyLimits,
) -> Result<(), ProxyError> {
    if lock(state).ended {
        return Ok(());
    }
    loop {
        let Ok(frame) = tokio::time::timeout(limits.idle, source.frame()).await else {
            return Err(ProxyError::RequestTimeout);
        };
        let mut guard = lock(state);
        match frame {
            None => {
                guard.ended = true;
                return Ok(());
            }
            Some(Ok(frame)) => {
                guard.record(&frame);
                if guard.frames.is_none() {
                    return Ok(());
                }
            }
            Some(Err(error)) => return Err(ProxyError::from_client_body(error.as_ref())),
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves the copy as it was; keep using it.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    /// Adds `frame` to the copy, or gives the copy up when it grows past
    /// `max` or the budget is spent.
    fn record(&mut self, frame: &Frame<Bytes>) {
        let Some(frames) = &mut self.frames else {
            return;
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len();
            self.len += n as u64;
            if self.len > self.max || !reserve(&self.budget, &mut self.permit, n) {
                debug!(copied = self.len, "request body copy given up");
                self.frames = None;
                self.permit = None;
                return;
            }
            frames.push(Copied::Data(data.clone()));
        } else if let Some(trailers) = frame.trailers_ref() {
            frames.push(Copied::Trailers(trailers.clone()));
        }
    }
}

/// Takes `n` more bytes of `budget` into `held`; false when it is spent.
fn reserve(budget: &CopyBudget, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> bool {
    let Ok(n) = u32::try_from(n) else {
        return false;
    };
    match budget.clone().try_acquire_many_owned(n) {
        Ok(permit) => {
            match held {
                Some(held) => held.merge(permit),
                None => *held = Some(permit),
            }
            true
        }
        Err(_) => false,
    }
}

/// The first attempt's body: the client's, frame by frame, each also added to
/// the copy. A gap longer than `idle` in the client's body is an error
/// ([`BodyStalled`]).
struct Tee {
    state: Arc<Mutex<State>>,
    idle: Duration,
    /// Armed when the client's body first has nothing to give after a frame.
    stall: Option<(Pin<Box<Sleep>>, bool)>,
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut state = lock(&this.state);
        let state = &mut *state;
        let Some(source) = &mut state.source else {
            return Poll::Ready(Some(Err(Box::new(Abandoned))));
        };
        match Pin::new(source).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                state.record(&frame);
                if let Some((_, armed)) = &mut this.stall {
                    *armed = false;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                state.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
            Poll::Pending => {
                let deadline = Instant::now() + this.idle;
                let (sleep, armed) = this
                    .stall
                    .get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(deadline)), true));
                if !*armed {
                    sleep.as_mut().reset(deadline);
                    *armed = true;
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = lock(&self.state);
        state.source.as_ref().is_some_and(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let state = lock(&self.state);
        state
            .source
            .as_ref()
            .map(Body::size_hint)
            .unwrap_or_default()
    }
}

/// A copied body sent again: its frames, then the end. Keeps the copy's
/// budget share until sent.
struct Resend {
    frames: std::vec::IntoIter<Copied>,
    _state: Arc<Mutex<State>>,
}

impl Body for Resend {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.frames.next().map(|copied| {
            Ok(match copied {
                Copied::Data(data) => Frame::data(data),
                Copied::Trailers(trailers) => Frame::trailers(trailers),
            })
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        let n = self
            .frames
            .as_slice()
            .iter()
            .map(|c| match c {
                Copied::Data(data) => data.len() as u64,
                Copied::Trailers(_) => 0,
            })
            .sum();
        SizeHint::with_exact(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    fn limits(max: u64) -> CopyLimits {
        CopyLimits { max, idle: IDLE }
    }

    fn budget(bytes: usize) -> CopyBudget {
        Arc::new(Semaphore::new(bytes))
    }

    /// A body of these chunks, then trailers when given.
    fn chunked(chunks: &[&'static str], trailers: Option<HeaderMap>) -> ProxyBody {
        let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        frames.extend(trailers.map(|t| Ok(Frame::trailers(t))));
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    async fn bytes_of(body: ProxyBody) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn the_first_attempt_streams_and_a_resend_gets_every_byte_and_trailer() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let budget = budget(100);
        let (first, copy) = tee(
            chunked(&["ab", "cd"], Some(trailers)),
            None,
            limits(10),
            &budget,
        );
        let seen = first.collect().await.unwrap();
        assert_eq!(seen.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(&seen.to_bytes()[..], b"abcd");
        assert_eq!(budget.available_permits(), 96, "4 bytes held");
        let again = copy
            .resend()
            .await
            .unwrap()
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(again.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(&again.to_bytes()[..], b"abcd");
        drop(copy);
        assert_eq!(budget.available_permits(), 100, "the budget comes back");
    }

    #[tokio::test]
    async fn the_whole_body_once_sent_and_within_max() {
        let (first, copy) = tee(chunked(&["ab", "cd"], None), None, limits(10), &budget(100));
        assert_eq!(copy.whole(10), None, "not sent yet");
        assert_eq!(&bytes_of(first).await[..], b"abcd");
        assert_eq!(copy.whole(10).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(copy.whole(3), None, "over the shadow's own max");
        assert_eq!(Copy::Empty.whole(0).as_deref(), Some(&b""[..]));
        assert_eq!(Copy::Unavailable.whole(10), None);
    }

    #[tokio::test]
    async fn a_resend_reads_what_the_first_attempt_did_not() {
        let (mut first, copy) = tee(
            chunked(&["ab", "cd", "ef"], None),
            None,
            limits(10),
            &budget(100),
        );
        // The first attempt reads one chunk, then fails.
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        let again = copy.resend().await.unwrap().unwrap();
        assert_eq!(&bytes_of(again).await[..], b"abcdef");
        // The abandoned attempt can read no further.
        assert!(first.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_copy_past_max_body_is_given_up_and_its_budget_returned() {
        let budget = budget(100);
        let (first, copy) = tee(chunked(&["abcd", "efgh"], None), None, limits(6), &budget);
        assert_eq!(
            &bytes_of(first).await[..],
            b"abcdefgh",
            "the body itself streams whole"
        );
        assert_eq!(budget.available_permits(), 100);
        assert!(copy.resend().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_spent_budget_gives_the_copy_up_chunk_by_chunk() {
        let budget = budget(3);
        let (first, copy) = tee(chunked(&["ab", "cd"], None), None, limits(100), &budget);
        assert_eq!(&bytes_of(first).await[..], b"abcd");
        assert!(copy.resend().await.unwrap().is_none());
        assert_eq!(budget.available_permits(), 3);
    }

    #[tokio::test]
    async fn nothing_is_reserved_for_a_declared_length_nobody_sends() {
        let budget = budget(100);
        let stalled = body::boxed(http_body_util::StreamBody::new(
            futures_util::stream::pending::<Result<Frame<Bytes>, BoxError>>(),
        ));
        let (_first, copy) = tee(stalled, Some(90), limits(100), &budget);
        assert_eq!(budget.available_permits(), 100);
        assert!(matches!(copy, Copy::Kept(..)));
    }

    #[tokio::test]
    async fn a_declared_length_over_max_body_is_not_copied() {
        let (_, copy) = tee(body::full("0123456789"), Some(10), limits(4), &budget(100));
        assert!(matches!(copy, Copy::Unavailable));
        let (_, copy) = tee(body::empty(), Some(0), limits(4), &budget(100));
        assert!(matches!(copy, Copy::Empty));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_client_body_is_an_error_after_the_idle_gap() {
        let stalled = body::boxed(http_body_util::StreamBody::new(
            futures_util::stream::pending::<Result<Frame<Bytes>, BoxError>>(),
        ));
        let (mut first, copy) = tee(stalled, Some(5), limits(10), &budget(100));
        let error = first.frame().await.unwrap().unwrap_err();
        assert!(error.is::<BodyStalled>(), "{error}");
        // A resend waits the same gap for the rest, then gives up.
        let Copy::Kept(..) = &copy else { panic!() };
        let resend = copy.resend().await;
        assert!(matches!(resend, Err(ProxyError::RequestTimeout)));
    }
}
