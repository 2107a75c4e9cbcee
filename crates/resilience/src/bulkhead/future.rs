//! The response future of [`BulkheadService`](super::BulkheadService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures::future::BoxFuture;
use pin_project_lite::pin_project;
use tower::Service;

use super::{BulkheadFull, BulkheadPermit};
use crate::error::BoxError;

pin_project! {
    /// Waits for a slot (in the queue if need be), then calls the inner
    /// service and holds the slot until the answer.
    pub struct ResponseFuture<S, Req, F> {
        #[pin]
        kind: Kind<S, Req, F>,
    }
}

pin_project! {
    #[project = Proj]
    enum Kind<S, Req, F> {
        Full {
            error: Option<BulkheadFull>,
        },
        Queued {
            acquire: BoxFuture<'static, BulkheadPermit>,
            service: Option<S>,
            request: Option<Req>,
        },
        Calling {
            #[pin]
            fut: F,
            permit: Option<BulkheadPermit>,
        },
    }
}

impl<S, Req, F> ResponseFuture<S, Req, F> {
    pub(crate) fn full(error: BulkheadFull) -> Self {
        Self {
            kind: Kind::Full { error: Some(error) },
        }
    }

    pub(crate) fn queued(
        acquire: BoxFuture<'static, BulkheadPermit>,
        service: S,
        request: Req,
    ) -> Self {
        let kind = Kind::Queued {
            acquire,
            service: Some(service),
            request: Some(request),
        };

        Self { kind }
    }

    pub(crate) fn calling(fut: F, permit: BulkheadPermit) -> Self {
        let kind = Kind::Calling {
            fut,
            permit: Some(permit),
        };

        Self { kind }
    }
}

impl<S, Req, T> Future for ResponseFuture<S, Req, S::Future>
where
    S: Service<Req, Response = T>,
    S::Error: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;

        loop {
            match kind.as_mut().project() {
                Proj::Full { error } => {
                    let error = error.take().expect("polled after completion");
                    return Poll::Ready(Err(error.into()));
                }
                Proj::Queued {
                    acquire,
                    service,
                    request,
                } => {
                    let permit = ready!(acquire.as_mut().poll(cx));
                    let mut service = service.take().expect("polled after completion");
                    let request = request.take().expect("polled after completion");
                    // The service was made ready before the call was queued.
                    let fut = service.call(request);
                    kind.set(Kind::Calling {
                        fut,
                        permit: Some(permit),
                    });
                }
                Proj::Calling { fut, permit } => {
                    let result = ready!(fut.poll(cx));
                    drop(permit.take());
                    return Poll::Ready(result.map_err(Into::into));
                }
            }
        }
    }
}
