//! The request body's copy for a replay, and the process-wide budget that
//! bounds all copies.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::body::{self, BoxError, ProxyBody};
use crate::error::{ProxyError, caused_by_length_limit};

/// A request body, held in memory for a possible replay or, when larger than
/// the replay limit, streaming on.
pub(super) enum Held {
    /// The whole body, and its share of the [`ReplayBudget`] until dropped.
    Whole(Bytes, Option<OwnedSemaphorePermit>),
    Streaming(ProxyBody),
}

/// Bytes of request bodies held for replay at once, across all requests.
/// Past it, a body streams (without fallback) rather than grow memory:
/// `max_body` bounds one request, this bounds them all.
pub(crate) const REPLAY_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// The process-wide allowance of held body bytes, one permit per byte.
pub(crate) type ReplayBudget = Arc<Semaphore>;

/// Takes `n` more bytes of `budget` into `held`; false when it is spent.
fn reserve(budget: &ReplayBudget, held: &mut Option<OwnedSemaphorePermit>, n: usize) -> bool {
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

/// Reads up to `max` bytes of `body`. A body that ends within `max` (and
/// within what is left of `budget`) is held whole; a larger one streams on
/// with what was already read in front. A client that sends nothing for
/// `idle` gets a 408.
pub(super) async fn hold(
    mut body: ProxyBody,
    max: u64,
    content_length: Option<u64>,
    idle: Duration,
    budget: &ReplayBudget,
) -> Result<Held, ProxyError> {
    if body.is_end_stream() {
        return Ok(Held::Whole(Bytes::new(), None));
    }
    if content_length.is_some_and(|n| n > max) {
        return Ok(Held::Streaming(body));
    }
    let mut permit = None;
    // A declared length is reserved up front; a chunked body chunk by chunk.
    let declared = content_length.unwrap_or(0) as usize;
    if !reserve(budget, &mut permit, declared) {
        debug!("replay budget spent: streaming without fallback");
        return Ok(Held::Streaming(body));
    }
    let mut buffer = BytesMut::with_capacity(declared);
    loop {
        let Ok(frame) = tokio::time::timeout(idle, body.frame()).await else {
            return Err(ProxyError::RequestTimeout);
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            if caused_by_length_limit(e.as_ref()) {
                ProxyError::PayloadTooLarge
            } else {
                ProxyError::BadRequest("client request body failed")
            }
        })?;
        // Trailers of a held body are dropped: replay sends the bytes only.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let beyond_declared =
            (buffer.len() + data.len()).saturating_sub(declared.max(buffer.len()));
        if (buffer.len() + data.len()) as u64 > max
            || !reserve(budget, &mut permit, beyond_declared)
        {
            buffer.extend_from_slice(&data);
            let prefix = buffer.freeze();
            return Ok(Held::Streaming(body::boxed(Prefixed {
                prefix: Some(prefix),
                rest: body,
            })));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Held::Whole(buffer.freeze(), permit))
}

/// A body that yields `prefix` and then the rest of a partly read body.
struct Prefixed {
    prefix: Option<Bytes>,
    rest: ProxyBody,
}

impl Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        hint.set_lower(hint.lower() + extra);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + extra);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(5);

    fn budget(bytes: usize) -> ReplayBudget {
        Arc::new(Semaphore::new(bytes))
    }

    fn chunked(chunks: &[&'static str]) -> ProxyBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn held_bytes_count_against_the_budget_until_dropped() {
        let budget = budget(8);
        let first = hold(body::full("12345"), 100, Some(5), IDLE, &budget)
            .await
            .unwrap();
        assert!(matches!(first, Held::Whole(..)));
        assert_eq!(budget.available_permits(), 3);
        // Declared length over what is left: streams, the budget is untouched.
        let second = hold(body::full("abcd"), 100, Some(4), IDLE, &budget)
            .await
            .unwrap();
        assert!(matches!(second, Held::Streaming(_)));
        assert_eq!(budget.available_permits(), 3);
        // Chunked: runs out mid-body, streams with every byte intact.
        let Held::Streaming(rest) = hold(chunked(&["ab", "cd"]), 100, None, IDLE, &budget)
            .await
            .unwrap()
        else {
            panic!("expected streaming");
        };
        assert_eq!(&rest.collect().await.unwrap().to_bytes()[..], b"abcd");
        assert_eq!(budget.available_permits(), 3);
        drop(first);
        assert_eq!(budget.available_permits(), 8);
    }

    #[tokio::test]
    async fn a_stalled_body_is_a_request_timeout() {
        let stalled = body::boxed(http_body_util::StreamBody::new(
            futures_util::stream::pending::<Result<Frame<Bytes>, BoxError>>(),
        ));
        let held = hold(
            stalled,
            10,
            Some(5),
            Duration::from_millis(20),
            &budget(100),
        )
        .await;
        assert!(matches!(held, Err(ProxyError::RequestTimeout)));
    }

    #[tokio::test]
    async fn small_body_is_held_whole() {
        let held = hold(body::full("hello"), 10, Some(5), IDLE, &budget(100))
            .await
            .unwrap();
        assert!(matches!(held, Held::Whole(b, _) if b == "hello"));
    }

    #[tokio::test]
    async fn body_over_max_streams_with_prefix_intact() {
        let chunks: Vec<Result<Frame<Bytes>, BoxError>> = (0..4)
            .map(|i| Ok(Frame::data(Bytes::from(vec![b'a' + i; 4]))))
            .collect();
        let streamed = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            chunks,
        )));
        let Held::Streaming(rest) = hold(streamed, 6, None, IDLE, &budget(100)).await.unwrap()
        else {
            panic!("expected streaming");
        };
        let all = rest.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"aaaabbbbccccdddd");
    }

    #[tokio::test]
    async fn declared_length_over_max_is_not_read() {
        let held = hold(body::full("0123456789"), 4, Some(10), IDLE, &budget(100))
            .await
            .unwrap();
        assert!(matches!(held, Held::Streaming(_)));
    }
}
