//! A bulkhead per dependency: a bounded number of calls in flight and a
//! bounded queue, so one slow neighbour cannot take every worker.
//!
//! A call takes a slot if one is free, else waits in the queue if it has
//! room, else is refused at once with [`BulkheadFull`]. The queue is first
//! come, first served. How long a queued call may wait is bounded by the
//! timeouts around it, not by the bulkhead.
//!
//! ```
//! use lectern_resilience::Bulkhead;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let bulkhead = Bulkhead::new("borrowing-service", 10, 20);
//! let answer = bulkhead.run(async { 42 }).await;
//! assert_eq!(answer.unwrap(), 42);
//! # }
//! ```

mod error;
mod future;
mod layer;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

pub use self::error::BulkheadFull;
pub use self::future::ResponseFuture;
pub use self::layer::BulkheadLayer;
use crate::error::BoxError;

/// Bounded calls in flight plus a bounded queue. Cloning it shares the
/// same slots.
#[derive(Clone, Debug)]
pub struct Bulkhead {
    inner: Arc<Shared>,
}

/// What every clone of one [`Bulkhead`] shares.
#[derive(Debug)]
pub(crate) struct Shared {
    name: Arc<str>,
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    max_queued: usize,
    queued: AtomicUsize,
    rejected: AtomicU64,
}

/// A slot in the bulkhead, given back when dropped.
#[derive(Debug)]
pub struct BulkheadPermit {
    _slot: OwnedSemaphorePermit,
}

/// A place in the queue, given back when the wait ends either way.
struct QueuePlace {
    inner: Arc<Shared>,
}

impl Drop for QueuePlace {
    fn drop(&mut self) {
        self.inner.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Bulkhead {
    /// At most `max_in_flight` calls at once (at least one) and
    /// `max_queued` waiting.
    pub fn new(name: impl Into<Arc<str>>, max_in_flight: usize, max_queued: usize) -> Self {
        let max_in_flight = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);

        let inner = Shared {
            name: name.into(),
            slots: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            max_queued,
            queued: AtomicUsize::new(0),
            rejected: AtomicU64::new(0),
        };

        Self {
            inner: Arc::new(inner),
        }
    }

    /// The bulkhead's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Takes a slot, waiting in the queue if need be, or refuses at once.
    pub async fn acquire(&self) -> Result<BulkheadPermit, BulkheadFull> {
        match self.try_acquire()? {
            Admission::Now(permit) => Ok(permit),
            Admission::Queued(place) => Ok(wait(place).await),
        }
    }

    /// Runs `fut` in a slot.
    pub async fn run<F: Future>(&self, fut: F) -> Result<F::Output, BulkheadFull> {
        let permit = self.acquire().await?;
        let output = fut.await;

        drop(permit);
        Ok(output)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.max_in_flight - self.inner.slots.available_permits()
    }

    /// Calls waiting now.
    pub fn queued(&self) -> usize {
        self.inner.queued.load(Ordering::Acquire)
    }

    /// Calls refused since the bulkhead was made.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// A tower layer that bounds services with this bulkhead.
    pub fn layer(&self) -> BulkheadLayer {
        BulkheadLayer::new(self.clone())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner
    }

    pub(crate) fn from_shared(inner: Arc<Shared>) -> Self {
        Self { inner }
    }

    /// A free slot, a place in the queue, or a refusal.
    fn try_acquire(&self) -> Result<Admission, BulkheadFull> {
        if let Ok(slot) = self.inner.slots.clone().try_acquire_owned() {
            return Ok(Admission::Now(BulkheadPermit { _slot: slot }));
        }

        let inner = &self.inner;
        let joined = inner
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < inner.max_queued).then_some(q + 1)
            });

        if joined.is_err() {
            inner.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(bulkhead = &*inner.name, "Call refused: bulkhead full");
            return Err(BulkheadFull::new(
                inner.name.clone(),
                inner.max_in_flight,
                inner.max_queued,
            ));
        }

        Ok(Admission::Queued(QueuePlace {
            inner: inner.clone(),
        }))
    }
}

enum Admission {
    Now(BulkheadPermit),
    Queued(QueuePlace),
}

async fn wait(place: QueuePlace) -> BulkheadPermit {
    let slots = place.inner.slots.clone();

    match slots.acquire_owned().await {
        Ok(slot) => BulkheadPermit { _slot: slot },
        // The semaphore is never closed.
        Err(_) => unreachable!("bulkhead semaphore closed"),
    }
}

/// A service bounded by a [`Bulkhead`].
///
/// The inner service must be `Clone`: a queued call takes a ready clone
/// with it, so the bulkhead never holds up `poll_ready` and refuses at once
/// when full.
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S> BulkheadService<S> {
    /// Bounds `inner` with `bulkhead`.
    pub fn new(inner: S, bulkhead: Bulkhead) -> Self {
        Self { inner, bulkhead }
    }
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Req, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.bulkhead.try_acquire() {
            Err(full) => ResponseFuture::full(full),
            Ok(Admission::Now(permit)) => ResponseFuture::calling(self.inner.call(req), permit),
            Ok(Admission::Queued(place)) => {
                // Take the service made ready by `poll_ready` along.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::queued(Box::pin(wait(place)), ready, req)
            }
        }
    }
}
