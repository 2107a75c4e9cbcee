//! A circuit breaker per dependency: stop calling a neighbour that is
//! failing, try it again now and then, and say so to whoever listens.
//!
//! States: **closed** (calls go through and are counted over a rolling
//! window), **open** (calls are refused at once until the reset timeout
//! passes), **half-open** (a fixed number of trial calls go through; every
//! other call is refused), plus two an operator forces: **disabled** (every
//! call goes through, nothing trips it) and **forced open** (every call is
//! refused).
//!
//! The breaker opens when the window holds at least `min_calls` calls and
//! either the failure rate or the slow-call rate reaches its threshold. A
//! call past the breaker's timeout counts as a failure. Which results are
//! failures is a [`Classify`] policy. When every trial succeeds the breaker
//! closes with an empty window; when one fails it opens again and the reset
//! timeout may grow, up to a cap.
//!
//! A breaker holds no timer and no task: transitions are worked out on
//! calls from tokio's clock, so an idle breaker costs only memory, and
//! dropping the last handle frees it.
//!
//! # Plain async API
//!
//! ```
//! use lectern_resilience::{Breaker, BreakerConfig, Error};
//!
//! # async fn fetch() -> Result<u32, std::io::Error> { Ok(2) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = Breaker::new("book-service", BreakerConfig::default());
//!
//! let copies = breaker
//!     .call_or_else(fetch(), |_err| async { Ok(0) })
//!     .await;
//! assert_eq!(copies.unwrap(), 2);
//! # }
//! ```
//!
//! # As a tower layer
//!
//! ```
//! use lectern_resilience::{Breaker, BreakerConfig};
//! use tower::{service_fn, ServiceBuilder};
//!
//! let breaker = Breaker::new("user-service", BreakerConfig::default());
//! let svc = ServiceBuilder::new()
//!     .layer(breaker.layer())
//!     .service(service_fn(|id: u64| async move {
//!         Ok::<_, std::io::Error>(id)
//!     }));
//! # drop(svc);
//! ```

mod classify;
mod config;
pub(crate) mod core;
mod error;
mod event;
mod future;
mod layer;
mod stats;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tower::Service;

pub use self::classify::{Classify, ErrorsAreFailures, Outcome, RetryableErrorsAreFailures};
pub use self::config::BreakerConfig;
use self::config::Settings;
use self::core::{Core, Permit};
pub use self::error::BreakerOpen;
pub use self::event::{BreakerEvent, BreakerListener, OpenCause};
pub use self::future::ResponseFuture;
pub use self::layer::BreakerLayer;
pub use self::stats::{Percentiles, Totals, WindowCounts};
use crate::error::{BoxError, Error};
use crate::timeout::Timed;

/// A breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through and are counted.
    Closed,
    /// Calls are refused until the reset timeout passes.
    Open,
    /// Trial calls go through; the rest are refused.
    HalfOpen,
    /// Forced by an operator: every call goes through, uncounted.
    Disabled,
    /// Forced by an operator: every call is refused.
    ForcedOpen,
}

impl BreakerState {
    /// Every state, in a fixed order (for one metric series each).
    pub const ALL: [Self; 5] = [
        Self::Closed,
        Self::Open,
        Self::HalfOpen,
        Self::Disabled,
        Self::ForcedOpen,
    ];

    /// The state's name in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::Disabled => "disabled",
            Self::ForcedOpen => "forced_open",
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::Disabled => 3,
            Self::ForcedOpen => 4,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::Disabled,
            4 => Self::ForcedOpen,
            _ => Self::Closed,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a breaker has seen, at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerSnapshot {
    /// The breaker's name.
    pub name: Arc<str>,
    /// Its state.
    pub state: BreakerState,
    /// How long it stays open, when open.
    pub open_for: Option<Duration>,
    /// The rolling window (empty unless closed).
    pub window: WindowCounts,
    /// Lifetime counters.
    pub totals: Totals,
    /// Latency over the last one to two windows.
    pub latency: Percentiles,
}

/// A circuit breaker. Cloning it gives another handle on the same breaker.
///
/// `C` decides which results count as failures ([`ErrorsAreFailures`]
/// unless [`Breaker::classify_with`] says otherwise).
#[derive(Clone)]
pub struct Breaker<C = ErrorsAreFailures> {
    core: Arc<Core>,
    classify: C,
}

impl Breaker {
    /// A closed breaker named after the dependency it guards.
    pub fn new(name: impl Into<Arc<str>>, config: BreakerConfig) -> Self {
        let settings = Settings::from(&config);

        Self {
            core: Arc::new(Core::new(name.into(), settings)),
            classify: ErrorsAreFailures,
        }
    }
}

impl<C> Breaker<C> {
    /// The same breaker, judging results with `classify`.
    pub fn classify_with<C2>(self, classify: C2) -> Breaker<C2> {
        Breaker {
            core: self.core,
            classify,
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The state now. An open breaker whose reset timeout has passed reads
    /// half-open, though it moves only on the next call.
    pub fn state(&self) -> BreakerState {
        self.core.state()
    }

    /// Counts and latency percentiles now.
    pub fn snapshot(&self) -> BreakerSnapshot {
        let state = self.core.state();

        BreakerSnapshot {
            name: self.core.name.clone(),
            state,
            open_for: (state == BreakerState::Open)
                .then(|| self.core.open_for())
                .flatten(),
            window: self.core.window(),
            totals: self.core.stats.totals(),
            latency: self.core.percentiles(),
        }
    }

    /// A receiver of every event from now on. A receiver that falls more
    /// than 1024 events behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        self.core.events.subscribe()
    }

    /// Calls `listener` with every event from now on.
    pub fn listen(&self, listener: Arc<dyn BreakerListener>) {
        self.core.events.listen(listener);
    }

    /// Lets every call through, uncounted, until [`Breaker::reset`].
    pub fn disable(&self) {
        self.core.force(BreakerState::Disabled);
    }

    /// Refuses every call until [`Breaker::reset`].
    pub fn force_open(&self) {
        self.core.force(BreakerState::ForcedOpen);
    }

    /// Closes the breaker with an empty window, whatever its state.
    pub fn reset(&self) {
        self.core.force(BreakerState::Closed);
    }

    /// A tower layer that guards services with this breaker.
    pub fn layer(&self) -> BreakerLayer<C>
    where
        C: Clone,
    {
        BreakerLayer::new(self.clone())
    }

    /// Runs `fut` through the breaker: refused at once when open, given up
    /// (dropped) at the call timeout, counted by the classifier.
    pub async fn call<F, T, E>(&self, fut: F) -> Result<T, Error<E>>
    where
        F: Future<Output = Result<T, E>>,
        C: Classify<T, E>,
    {
        self.call_with(|| fut).await
    }

    /// Like [`Breaker::call`], but the call is made by `make` only once
    /// the breaker has let it through.
    pub(crate) async fn call_with<M, F, T, E>(&self, make: M) -> Result<T, Error<E>>
    where
        M: FnOnce() -> F,
        F: Future<Output = Result<T, E>>,
        C: Classify<T, E>,
    {
        let permit = Permit::new(&*self.core, self.core.acquire()?);
        let start = Instant::now();
        let timed = Timed::new(make(), self.core.settings.call_timeout, start).await;
        let end = Instant::now();

        match timed {
            Ok(result) => {
                permit.complete(self.classify.classify(&result), start, end);
                result.map_err(Error::Inner)
            }
            Err(elapsed) => {
                permit.timed_out(elapsed.limit(), start, end);
                Err(elapsed.into())
            }
        }
    }

    /// Like [`Breaker::call`], but when the call fails, is refused or
    /// times out, `fallback` gets the error and answers instead. It runs
    /// at most once; it may hand the error back (`Err(err)`) when it has
    /// nothing better, for example when the error was the caller's fault.
    pub async fn call_or_else<F, T, E, Fb, FbFut>(
        &self,
        fut: F,
        fallback: Fb,
    ) -> Result<T, Error<E>>
    where
        F: Future<Output = Result<T, E>>,
        C: Classify<T, E>,
        Fb: FnOnce(Error<E>) -> FbFut,
        FbFut: Future<Output = Result<T, Error<E>>>,
    {
        let result = self.call(fut).await;

        self.recover(result, fallback).await
    }

    /// Like [`Breaker::call_or_else`], but a call past the timeout is not
    /// cancelled: it goes on in a spawned task, and when it ends its result
    /// is counted as late and discarded. It never reaches the caller and
    /// never runs the fallback a second time. For work that cannot be
    /// cancelled halfway, or whose late outcome is worth knowing.
    ///
    /// Must run inside a tokio runtime (the late call is spawned).
    pub async fn call_detached_or_else<F, T, E, Fb, FbFut>(
        &self,
        fut: F,
        fallback: Fb,
    ) -> Result<T, Error<E>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        C: Classify<T, E> + Clone + Send + Sync + 'static,
        Fb: FnOnce(Error<E>) -> FbFut,
        FbFut: Future<Output = Result<T, Error<E>>>,
    {
        let result = self.call_detached(fut).await;

        self.recover(result, fallback).await
    }

    async fn call_detached<F, T, E>(&self, fut: F) -> Result<T, Error<E>>
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        C: Classify<T, E> + Clone + Send + Sync + 'static,
    {
        let permit = Permit::new(&*self.core, self.core.acquire()?);
        let start = Instant::now();
        let mut fut = Box::pin(fut);
        let timed = Timed::new(fut.as_mut(), self.core.settings.call_timeout, start).await;
        let end = Instant::now();

        match timed {
            Ok(result) => {
                permit.complete(self.classify.classify(&result), start, end);
                result.map_err(Error::Inner)
            }
            Err(elapsed) => {
                permit.timed_out(elapsed.limit(), start, end);
                self.finish_late(fut);
                Err(elapsed.into())
            }
        }
    }

    fn finish_late<F, T, E>(&self, fut: Pin<Box<F>>)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
        C: Classify<T, E> + Clone + Send + Sync + 'static,
    {
        let core = self.core.clone();
        let classify = self.classify.clone();

        tokio::spawn(async move {
            let result = fut.await;
            core.late(classify.classify(&result));
        });
    }

    async fn recover<T, E, Fb, FbFut>(
        &self,
        result: Result<T, Error<E>>,
        fallback: Fb,
    ) -> Result<T, Error<E>>
    where
        Fb: FnOnce(Error<E>) -> FbFut,
        FbFut: Future<Output = Result<T, Error<E>>>,
    {
        match result {
            Ok(value) => Ok(value),
            Err(err) => {
                self.core.fallback_ran();
                fallback(err).await
            }
        }
    }

    /// Tells the breaker a fallback ran for one of its calls (for fallbacks
    /// outside [`Breaker::call_or_else`], such as a tower fallback layer).
    pub fn record_fallback(&self) {
        self.core.fallback_ran();
    }

    /// Roughly the bytes this breaker takes (its shared state and
    /// counters, not its name or listeners).
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Core>() + self.core.stats.heap_size()
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }
}

impl<C> fmt::Debug for Breaker<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("name", &self.core.name)
            .field("state", &self.core.state())
            .finish()
    }
}

/// A service guarded by a [`Breaker`].
///
/// A call past the breaker's timeout is always cancelled here; only the
/// plain API's [`Breaker::call_detached_or_else`] lets it finish late.
// Limitation: each call clones the breaker's `Arc` into its future, and
// that reference count is shared by every thread; with two threads calling
// at once it roughly doubles the cost per call (about 85 ns more on the
// 2-core bench machine). The plain API borrows the breaker and does not
// pay it.
#[derive(Clone, Debug)]
pub struct BreakerService<S, C = ErrorsAreFailures> {
    inner: S,
    breaker: Breaker<C>,
}

impl<S, C> BreakerService<S, C> {
    /// Guards `inner` with `breaker`.
    pub fn new(inner: S, breaker: Breaker<C>) -> Self {
        Self { inner, breaker }
    }
}

impl<S, C, Req> Service<Req> for BreakerService<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let core = self.breaker.core.clone();
        let raw = match core.acquire() {
            Ok(raw) => raw,
            Err(open) => return ResponseFuture::rejected(open),
        };
        let start = Instant::now();
        let limit = core.settings.call_timeout;
        let timed = Timed::new(self.inner.call(req), limit, start);

        ResponseFuture::running(
            timed,
            Permit::new(core, raw),
            self.breaker.classify.clone(),
            start,
        )
    }
}
