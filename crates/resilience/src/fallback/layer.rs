//! A tower layer that answers in place of a failed call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::breaker::core::Core;
use crate::breaker::Breaker;
use crate::error::BoxError;

/// Applies a [`Fallback`] to the services it wraps.
#[derive(Clone)]
pub struct FallbackLayer<F> {
    fallback: F,
    breaker: Option<Arc<Core>>,
}

impl<F> FallbackLayer<F> {
    /// On error, `fallback` gets the error and answers instead (or returns
    /// an error of its own). It runs at most once per call.
    pub fn new(fallback: F) -> Self {
        Self {
            fallback,
            breaker: None,
        }
    }

    /// Counts each fallback in `breaker`'s events and metrics.
    #[must_use]
    pub fn report_to<C>(mut self, breaker: &Breaker<C>) -> Self {
        self.breaker = Some(breaker.core().clone());
        self
    }
}

impl<S, F: Clone> Layer<S> for FallbackLayer<F> {
    type Service = Fallback<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Fallback {
            inner,
            fallback: self.fallback.clone(),
            breaker: self.breaker.clone(),
        }
    }
}

impl<F> std::fmt::Debug for FallbackLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackLayer").finish_non_exhaustive()
    }
}

/// A service that answers with a fallback when the inner one fails.
#[derive(Clone)]
pub struct Fallback<S, F> {
    inner: S,
    fallback: F,
    breaker: Option<Arc<Core>>,
}

impl<S, F> std::fmt::Debug for Fallback<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback").finish_non_exhaustive()
    }
}

impl<S, F, Fut, Req> Service<Req> for Fallback<S, F>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    F: Fn(BoxError) -> Fut + Clone,
    Fut: Future<Output = Result<S::Response, BoxError>>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, F, Fut>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let kind = Kind::Calling {
            fut: self.inner.call(req),
            fallback: Some(self.fallback.clone()),
            breaker: self.breaker.clone(),
        };

        ResponseFuture { kind }
    }
}

pin_project! {
    /// The call, then, if it failed, the fallback.
    pub struct ResponseFuture<F, Fb, FbFut> {
        #[pin]
        kind: Kind<F, Fb, FbFut>,
    }
}

pin_project! {
    #[project = Proj]
    enum Kind<F, Fb, FbFut> {
        Calling {
            #[pin]
            fut: F,
            fallback: Option<Fb>,
            breaker: Option<Arc<Core>>,
        },
        Recovering {
            #[pin]
            fut: FbFut,
        },
    }
}

impl<F, Fb, FbFut, T, E> Future for ResponseFuture<F, Fb, FbFut>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    Fb: FnOnce(BoxError) -> FbFut,
    FbFut: Future<Output = Result<T, BoxError>>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;

        loop {
            match kind.as_mut().project() {
                Proj::Calling {
                    fut,
                    fallback,
                    breaker,
                } => {
                    let err = match ready!(fut.poll(cx)) {
                        Ok(answer) => return Poll::Ready(Ok(answer)),
                        Err(err) => err.into(),
                    };
                    if let Some(core) = breaker.take() {
                        core.fallback_ran();
                    }
                    let fallback = fallback.take().expect("polled after completion");
                    let fut = fallback(err);
                    kind.set(Kind::Recovering { fut });
                }
                Proj::Recovering { fut } => return fut.poll(cx),
            }
        }
    }
}
