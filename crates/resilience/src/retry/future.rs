//! The response future of [`RetryService`](super::RetryService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::Service;

use super::{Decision, Retry, RetryClassify};
use crate::deadline::{Deadline, DeadlineExceeded};
use crate::error::BoxError;
use crate::timeout::Timed;

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Readying,
        Calling {
            #[pin]
            timed: Timed<F>,
        },
        Waiting {
            #[pin]
            sleep: Sleep,
        },
    }
}

pin_project! {
    /// Sends the request, and again after a backoff while the policy, the
    /// deadline and the budget allow.
    pub struct ResponseFuture<S, Req, F, K> {
        #[pin]
        state: State<F>,
        service: S,
        request: Req,
        retry: Retry,
        classify: K,
        retry_safe: bool,
        deadline: Option<Deadline>,
        attempts: u32,
        by_deadline: bool,
    }
}

impl<S, Req, F, K> ResponseFuture<S, Req, F, K> {
    pub(crate) fn new(
        service: S,
        request: Req,
        retry: Retry,
        classify: K,
        retry_safe: bool,
        deadline: Option<Deadline>,
    ) -> Self {
        Self {
            state: State::Readying,
            service,
            request,
            retry,
            classify,
            retry_safe,
            deadline,
            attempts: 0,
            by_deadline: false,
        }
    }
}

impl<S, Req, K> Future for ResponseFuture<S, Req, S::Future, K>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    Req: Clone,
    K: RetryClassify<S::Response>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();

            match this.state.as_mut().project() {
                StateProj::Readying => {
                    ready!(this.service.poll_ready(cx)).map_err(Into::into)?;

                    let (limit, by_deadline) = this.retry.attempt_limit(*this.deadline);
                    if by_deadline && limit.is_some_and(|l| l.is_zero()) {
                        return Poll::Ready(Err(DeadlineExceeded::new().into()));
                    }
                    *this.attempts += 1;
                    *this.by_deadline = by_deadline;

                    let fut = this.service.call(this.request.clone());
                    let timed = Timed::new(fut, limit, Instant::now());
                    this.state.set(State::Calling { timed });
                }
                StateProj::Calling { timed } => {
                    let result = match ready!(timed.poll(cx)) {
                        Ok(result) => result.map_err(Into::into),
                        Err(_) if *this.by_deadline => {
                            return Poll::Ready(Err(DeadlineExceeded::new().into()));
                        }
                        Err(elapsed) => Err(elapsed.into()),
                    };
                    let hint = this.classify.hint(&result);

                    match this
                        .retry
                        .decide(*this.attempts, *this.retry_safe, hint, *this.deadline)
                    {
                        Decision::Stop => return Poll::Ready(result),
                        Decision::Wait(delay) => {
                            let sleep = tokio::time::sleep(delay);
                            this.state.set(State::Waiting { sleep });
                        }
                    }
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                }
            }
        }
    }
}
