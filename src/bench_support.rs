//! Entry points for the criterion benches (`benches/*.rs`) into private parts
//! of the request path. Hidden from the docs: not an API, and nothing else
//! should use it.

use http_body_util::BodyExt;

use crate::body;

pub use crate::ratelimit::RateLimiter;
pub use crate::stats::window::Window;
pub use copying::copy_body;

/// Reads `body` to the end; the bytes it held. The baseline for
/// [`copy_body`].
pub async fn drain(mut body: body::ProxyBody) -> usize {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read += data.len();
        }
    }
    read
}

mod copying {
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body::Frame;
    use tokio::sync::Semaphore;

    use crate::body;
    use crate::proxy::copy;

    /// Streams `chunks` as a request body through the copy the request path
    /// keeps for a replay (at most `max` bytes, from `budget`) and reads it to
    /// the end, as the first attempt does; with `resend`, then takes the copy
    /// back and reads it again, as a fallback to legacy does. Returns the
    /// bytes read. Needs a tokio runtime with the time driver.
    pub async fn copy_body(
        chunks: &[Bytes],
        max: u64,
        budget: &Arc<Semaphore>,
        resend: bool,
    ) -> usize {
        let frames = chunks
            .iter()
            .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(c.clone())))
            .collect::<Vec<_>>();
        let source = body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )));
        let length = chunks.iter().map(|c| c.len() as u64).sum();
        let limits = copy::CopyLimits {
            max,
            idle: std::time::Duration::from_secs(10),
        };
        let (first, copy) = copy::tee(source, Some(length), limits, budget);
        let mut read = super::drain(first).await;
        if resend && let Ok(Some(again)) = copy.resend().await {
            read += super::drain(again).await;
        }
        read
    }
}
