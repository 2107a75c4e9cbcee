//! The body of every response the gateway sends.
//!
//! Either a small body the gateway made itself (JSON, metrics, a problem
//! document), or an upstream's body read from its connection as the
//! client takes it. A relayed body enforces the read timeout between two
//! pieces of data and holds the request's [`InFlight`] guard, so the
//! server counts the request until its answer is fully passed on, breaks,
//! or the client goes away. When the body is complete its connection
//! goes back to the server's keep-alive pool.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use tokio::time::{Instant, Sleep};

use crate::client::body::Reader;
use crate::upstream::InFlight;

/// A relayed upstream body failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The upstream connection broke or sent invalid framing mid-body.
    #[error("upstream body failed")]
    Upstream(#[source] std::io::Error),
    /// The upstream sent nothing for the read timeout.
    #[error("upstream sent no data for {0:?}")]
    Idle(Duration),
    /// A problem document's body failed (it is in memory, so never).
    #[error("problem body failed")]
    Problem(#[source] axum::Error),
}

/// An upstream body being passed on.
#[derive(Debug)]
pub(crate) struct Relayed {
    reader: Reader,
    /// Armed only when the upstream makes the client wait.
    idle: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    last_data: Instant,
    guard: Option<InFlight>,
}

/// A response body: made here, or relayed from an upstream.
#[derive(Debug)]
pub(crate) enum GatewayBody {
    /// Made by the gateway.
    Made(Full<Bytes>),
    /// A problem document made by `lectern_platform`.
    Problem(axum::body::Body),
    /// An upstream's body.
    Relayed(Box<Relayed>),
}

impl GatewayBody {
    /// A body made by the gateway.
    pub(crate) fn made(bytes: impl Into<Bytes>) -> Self {
        GatewayBody::Made(Full::new(bytes.into()))
    }

    /// A problem document made by `lectern_platform`.
    pub(crate) fn problem(body: axum::body::Body) -> Self {
        GatewayBody::Problem(body)
    }

    /// An upstream's body, passed on with an idle timeout.
    pub(crate) fn relayed(
        reader: Reader,
        timeout: Duration,
        guard: InFlight,
    ) -> Self {
        let mut relayed = Relayed {
            reader,
            idle: None,
            timeout,
            last_data: Instant::now(),
            guard: Some(guard),
        };
        relayed.finish_if_done();

        GatewayBody::Relayed(Box::new(relayed))
    }
}

impl Relayed {
    /// Once the body is complete: the connection back to the pool.
    fn finish_if_done(&mut self) {
        if !self.reader.is_done() {
            return;
        }
        if let Some(guard) = self.guard.take() {
            if let Some(conn) = self.reader.reusable() {
                guard.server().pool().put(conn);
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.reader.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                self.last_data = Instant::now();
                self.finish_if_done();
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Poll::Ready(Some(Err(error))) => {
                self.guard.take();
                return Poll::Ready(Some(Err(BodyError::Upstream(error))));
            }
            Poll::Ready(None) => {
                self.finish_if_done();
                self.guard.take();
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }

        // The timer is moved only when it fires, not per piece of data:
        // a fired timer with data since then re-arms from there.
        let deadline = self.last_data + self.timeout;
        let idle = self.idle.get_or_insert_with(|| {
            Box::pin(tokio::time::sleep_until(deadline))
        });
        while idle.as_mut().poll(cx).is_ready() {
            let deadline = self.last_data + self.timeout;
            if Instant::now() >= deadline {
                self.guard.take();
                return Poll::Ready(Some(Err(BodyError::Idle(self.timeout))));
            }
            idle.as_mut().reset(deadline);
        }

        Poll::Pending
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            GatewayBody::Made(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|never| match never {}))),
            GatewayBody::Problem(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(BodyError::Problem))),
            GatewayBody::Relayed(relayed) => relayed.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            GatewayBody::Made(body) => body.is_end_stream(),
            GatewayBody::Problem(body) => body.is_end_stream(),
            GatewayBody::Relayed(relayed) => relayed.reader.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            GatewayBody::Made(body) => body.size_hint(),
            GatewayBody::Problem(body) => body.size_hint(),
            GatewayBody::Relayed(relayed) => match relayed.reader.remaining() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}
