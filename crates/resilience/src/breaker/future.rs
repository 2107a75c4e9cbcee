//! The response future of [`BreakerService`](super::BreakerService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::core::{Core, Permit};
use super::{BreakerOpen, Classify};
use crate::error::BoxError;
use crate::timeout::Timed;

pin_project! {
    /// Resolves to the inner service's answer, or to a [`BreakerOpen`] or
    /// [`Elapsed`](crate::Elapsed) error. A call past the breaker's timeout
    /// is dropped, which cancels it.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = Proj]
    enum Kind<F, C> {
        Rejected {
            error: Option<BreakerOpen>,
        },
        Running {
            #[pin]
            timed: Timed<F>,
            permit: Option<Permit<Arc<Core>>>,
            classify: C,
            start: Instant,
        },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn rejected(error: BreakerOpen) -> Self {
        let kind = Kind::Rejected { error: Some(error) };

        Self { kind }
    }

    pub(crate) fn running(
        timed: Timed<F>,
        permit: Permit<Arc<Core>>,
        classify: C,
        start: Instant,
    ) -> Self {
        let kind = Kind::Running {
            timed,
            permit: Some(permit),
            classify,
            start,
        };

        Self { kind }
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            Proj::Rejected { error } => {
                let error = error.take().expect("polled after completion");
                Poll::Ready(Err(error.into()))
            }
            Proj::Running {
                timed,
                permit,
                classify,
                start,
            } => {
                let output = ready!(timed.poll(cx));
                let end = Instant::now();
                let permit = permit.take().expect("polled after completion");

                match output {
                    Ok(result) => {
                        permit.complete(classify.classify(&result), *start, end);
                        Poll::Ready(result.map_err(Into::into))
                    }
                    Err(elapsed) => {
                        permit.timed_out(elapsed.limit(), *start, end);
                        Poll::Ready(Err(elapsed.into()))
                    }
                }
            }
        }
    }
}
