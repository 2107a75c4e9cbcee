//! The gateway's own routes: health, metrics and the upstreams' state.
//!
//! - `/health/live`: 200 while the process serves; checks nothing else.
//! - `/health/ready`: 200 when every upstream has a server that may take
//!   requests, else 503 (the orchestrator then stops routing here).
//! - `/health`: `{"status", "timestamp", "checks": {<upstream>: ...}}`,
//!   200 when every check is `UP`, else 503.
//! - `/metrics`: Prometheus text.
//! - `/admin/upstreams`: every server's state as JSON: in-flight count,
//!   idle connections, passive health, active checks, ejection, region,
//!   and which region of each upstream serves.

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::body::GatewayBody;
use crate::gateway::{up_or_down, Gateway};
use crate::problem;

const OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

#[derive(Serialize)]
struct Check {
    status: &'static str,
    available: usize,
    servers: usize,
}

#[derive(Serialize)]
struct Report<'a> {
    status: &'static str,
    timestamp: String,
    checks: BTreeMap<&'a str, Check>,
}

fn word(up: bool) -> &'static str {
    if up {
        "UP"
    } else {
        "DOWN"
    }
}

/// `/health/live`.
pub(crate) fn live() -> Response<GatewayBody> {
    problem::json(StatusCode::OK, &Status { status: "UP" })
}

/// `/health/ready`.
pub(crate) fn ready(gateway: &Gateway) -> Response<GatewayBody> {
    let ready = gateway.upstreams().iter().all(|u| u.is_ready());

    up_or_down(
        ready,
        &Status {
            status: word(ready),
        },
    )
}

/// `/health`.
pub(crate) fn health(gateway: &Gateway) -> Response<GatewayBody> {
    let reports: Vec<_> =
        gateway.upstreams().iter().map(|u| u.report()).collect();
    let checks: BTreeMap<_, _> = reports
        .iter()
        .map(|r| {
            let available = r.servers.iter().filter(|s| s.available).count();
            let check = Check {
                status: word(r.ready),
                available,
                servers: r.servers.len(),
            };
            (r.name, check)
        })
        .collect();
    let up = checks.values().all(|c| c.status == "UP");

    let report = Report {
        status: word(up),
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        checks,
    };

    up_or_down(up, &report)
}

/// `/metrics`, with the server gauges read fresh from the balancer.
pub(crate) fn metrics(gateway: &Gateway) -> Response<GatewayBody> {
    for upstream in gateway.upstreams() {
        upstream.publish();
    }

    problem::respond(
        StatusCode::OK,
        OPENMETRICS,
        gateway.metrics().families().render(),
    )
}

/// `/admin/upstreams`.
pub(crate) fn upstreams(gateway: &Gateway) -> Response<GatewayBody> {
    #[derive(Serialize)]
    struct All<'a> {
        upstreams: Vec<crate::upstream::UpstreamReport<'a>>,
    }

    let upstreams = gateway.upstreams().iter().map(|u| u.report()).collect();

    problem::json(StatusCode::OK, &All { upstreams })
}
