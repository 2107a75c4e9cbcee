//! Every answer the gateway makes itself, and the one place where its
//! failures become HTTP statuses.
//!
//! Errors are problem documents (`application/problem+json`, RFC 9457)
//! made by `lectern_platform`'s [`ApiError`], so they read as every
//! Lectern service's do. A detail names the upstream, never a server's
//! address.

use axum::response::IntoResponse;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use lectern_platform::problem::ApiError;
use serde::Serialize;

use crate::body::GatewayBody;
use crate::retry::Failure;

/// Why the gateway answers a proxied request itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No route, or a route the gateway keeps private.
    NotFound,
    /// The path tries to climb out of its route with `.` or `..`.
    DotSegment,
    /// `/admin` asked from a non-loopback address.
    AdminForbidden,
    /// A method other than GET or HEAD on the gateway's own routes.
    MethodNotAllowed,
    /// The body is larger than `client_max_body_size`.
    TooLarge(u64),
    /// The client did not send its body in time.
    BodyTimeout,
    /// The client's body broke off.
    BodyBroken,
    /// No server of the upstream may take requests now.
    NoServer {
        /// The upstream.
        upstream: Box<str>,
        /// Seconds until one may.
        retry_after: u64,
    },
    /// The last server tried failed.
    Failed {
        /// The upstream.
        upstream: Box<str>,
        /// How.
        failure: Failure,
    },
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::DotSegment | Refusal::BodyBroken => {
                StatusCode::BAD_REQUEST
            }
            Refusal::AdminForbidden => StatusCode::FORBIDDEN,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::NoServer { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Failed { failure, .. } if failure.is_timeout() => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Refusal::Failed { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Refusal::NotFound => "not-found",
            Refusal::DotSegment | Refusal::BodyBroken => "bad-request",
            Refusal::AdminForbidden => "forbidden",
            Refusal::MethodNotAllowed => "method-not-allowed",
            Refusal::TooLarge(_) => "body-too-large",
            Refusal::BodyTimeout => "request-timeout",
            Refusal::NoServer { .. } => "upstream-unavailable",
            Refusal::Failed { failure, .. } if failure.is_timeout() => {
                "upstream-timeout"
            }
            Refusal::Failed { .. } => "upstream-failed",
        }
    }

    fn detail(&self) -> String {
        match self {
            Refusal::NotFound => "no such route".to_owned(),
            Refusal::DotSegment => {
                "the path has a `.` or `..` segment".to_owned()
            }
            Refusal::AdminForbidden => {
                "the admin routes answer loopback clients only".to_owned()
            }
            Refusal::MethodNotAllowed => {
                "the gateway's own routes take GET or HEAD only".to_owned()
            }
            Refusal::TooLarge(max) => {
                format!("the request body is larger than {max} bytes")
            }
            Refusal::BodyTimeout => {
                "the request body did not arrive in time".to_owned()
            }
            Refusal::BodyBroken => "the request body broke off".to_owned(),
            Refusal::NoServer { upstream, .. } => {
                format!("no server of upstream `{upstream}` is available")
            }
            Refusal::Failed { upstream, failure } => {
                format!("upstream `{upstream}` {}", failure.describe())
            }
        }
    }

    /// The problem document for this refusal.
    pub(crate) fn into_response(self) -> Response<GatewayBody> {
        let mut error =
            ApiError::new(self.status(), self.slug(), self.detail());
        if let Refusal::NoServer { retry_after, .. } = self {
            error.retry_after = Some(retry_after);
        }

        error.into_response().map(GatewayBody::problem)
    }
}

/// A JSON answer.
pub(crate) fn json(
    status: StatusCode,
    value: &impl Serialize,
) -> Response<GatewayBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();

    respond(status, "application/json", bytes)
}

/// An answer with a body of the given media type.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<GatewayBody> {
    let mut response = Response::new(GatewayBody::made(body));
    *response.status_mut() = status;
    let value = HeaderValue::from_static(content_type);
    response.headers_mut().insert(header::CONTENT_TYPE, value);

    response
}
