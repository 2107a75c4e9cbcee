//! The futures of the timeout: a timed wrapper shared by every layer of this
//! crate, and the response future of the [`Timeout`](super::Timeout)
//! service.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::Elapsed;
use crate::deadline::DeadlineExceeded;
use crate::error::BoxError;

pin_project! {
    /// Runs a future against a time limit counted from `start`.
    ///
    /// The timer is armed only when the future first returns `Pending`, so
    /// a call that is ready at once costs no timer, and it lives on the
    /// heap, so that the future stays small to move.
    #[derive(Debug)]
    pub(crate) struct Timed<F> {
        #[pin]
        fut: F,
        sleep: Option<Pin<Box<Sleep>>>,
        limit: Option<Duration>,
        start: Instant,
    }
}

impl<F> Timed<F> {
    /// `fut` limited to `limit` after `start`; no limit when `None`.
    pub(crate) fn new(fut: F, limit: Option<Duration>, start: Instant) -> Self {
        Self {
            fut,
            sleep: None,
            limit,
            start,
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();

        if let Poll::Ready(output) = this.fut.poll(cx) {
            return Poll::Ready(Ok(output));
        }

        let Some(limit) = *this.limit else {
            return Poll::Pending;
        };
        let Some(at) = this.start.checked_add(limit) else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));

        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(Elapsed::new(limit)))
    }
}

pin_project! {
    /// The response future of [`Timeout`](super::Timeout).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        timed: Timed<F>,
        by_deadline: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(timed: Timed<F>, by_deadline: bool) -> Self {
        Self { timed, by_deadline }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();

        match ready!(this.timed.poll(cx)) {
            Ok(result) => Poll::Ready(result.map_err(Into::into)),
            Err(_) if *this.by_deadline => Poll::Ready(Err(DeadlineExceeded::new().into())),
            Err(elapsed) => Poll::Ready(Err(elapsed.into())),
        }
    }
}
