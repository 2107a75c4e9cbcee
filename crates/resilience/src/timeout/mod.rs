//! Timeouts per attempt and per request.
//!
//! [`Timeout`] gives up a call after a fixed limit, after the deadline the
//! request carries, or after whichever comes first. A call that runs out of
//! time has its future dropped, which cancels it, and fails with
//! [`Elapsed`] (its own limit, retryable) or
//! [`DeadlineExceeded`](crate::DeadlineExceeded) (the caller's deadline,
//! final). Placed inside a retry layer it limits each attempt; outside, the
//! whole request.
//!
//! ```
//! use std::time::Duration;
//! use lectern_resilience::timeout::TimeoutLayer;
//! use tower::{service_fn, Layer};
//!
//! let svc = TimeoutLayer::new(Duration::from_secs(3))
//!     .layer(service_fn(|x: u32| async move { Ok::<_, std::io::Error>(x) }));
//! # drop(svc);
//! ```

mod error;
mod future;
mod layer;

use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;

pub use self::error::Elapsed;
pub use self::future::ResponseFuture;
pub(crate) use self::future::Timed;
pub use self::layer::TimeoutLayer;
use crate::deadline::Deadline;
use crate::error::BoxError;

/// Reads the caller's deadline from a request.
pub trait ExtractDeadline<Req> {
    /// The deadline `req` carries, if any.
    fn deadline(&self, req: &Req) -> Option<Deadline>;
}

impl<Req, F> ExtractDeadline<Req> for F
where
    F: Fn(&Req) -> Option<Deadline>,
{
    fn deadline(&self, req: &Req) -> Option<Deadline> {
        self(req)
    }
}

/// Requests carry no deadline.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDeadline;

impl<Req> ExtractDeadline<Req> for NoDeadline {
    fn deadline(&self, _: &Req) -> Option<Deadline> {
        None
    }
}

/// Gives up calls that take too long.
#[derive(Clone, Debug)]
pub struct Timeout<S, D = NoDeadline> {
    inner: S,
    limit: Option<Duration>,
    deadline: D,
}

impl<S, D> Timeout<S, D> {
    /// Wraps `inner`: calls are limited by `limit` and by the deadline
    /// `deadline` reads from each request, whichever comes first.
    pub fn new(inner: S, limit: Option<Duration>, deadline: D) -> Self {
        Self {
            inner,
            limit,
            deadline,
        }
    }

    /// The effective limit for one call, and whether the deadline set it.
    fn limit_for(&self, deadline: Option<Deadline>) -> (Option<Duration>, bool) {
        let remaining = deadline.map(Deadline::remaining);

        match (self.limit, remaining) {
            (Some(own), Some(left)) if left < own => (Some(left), true),
            (Some(own), _) => (Some(own), false),
            (None, Some(left)) => (Some(left), true),
            (None, None) => (None, false),
        }
    }
}

impl<S, D, Req> Service<Req> for Timeout<S, D>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    D: ExtractDeadline<Req>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let (limit, by_deadline) = self.limit_for(self.deadline.deadline(&req));
        let start = Instant::now();
        let fut = self.inner.call(req);

        ResponseFuture::new(Timed::new(fut, limit, start), by_deadline)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tower::{service_fn, Layer, ServiceExt};

    use super::*;
    use crate::error::hint_of;

    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_call_is_given_up_and_dropped() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        let svc = service_fn(move |_: ()| {
            let guard = DropFlag(flag.clone());
            async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                drop(guard);
                Ok::<_, BoxError>("late")
            }
        });
        let svc = TimeoutLayer::new(Duration::from_secs(3)).layer(svc);

        let started = Instant::now();
        let err = svc.oneshot(()).await.unwrap_err();

        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(err.downcast_ref::<Elapsed>().is_some());
        assert!(dropped.load(Ordering::SeqCst), "the call was not cancelled");
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_deadline_wins_when_it_is_sooner() {
        let svc = service_fn(|_: Deadline| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, BoxError>(())
        });
        let svc = TimeoutLayer::new(Duration::from_secs(3))
            .with_deadline(|d: &Deadline| Some(*d))
            .layer(svc);

        let started = Instant::now();
        let deadline = Deadline::after(Duration::from_secs(1));
        let err = svc.oneshot(deadline).await.unwrap_err();

        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(hint_of(err.as_ref()).map(|h| h.retryable), Some(false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_call_passes_through() {
        let svc = service_fn(|x: u32| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, BoxError>(x * 2)
        });
        let svc = TimeoutLayer::new(Duration::from_secs(3)).layer(svc);

        assert_eq!(svc.oneshot(21).await.unwrap(), 42);
    }
}
