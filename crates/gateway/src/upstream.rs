//! Upstreams and their servers: which server takes the next request.
//!
//! The choice is nginx's `least_conn`: among the servers a request may
//! use, the one with the fewest requests in flight relative to its
//! weight (`in_flight / weight`, compared by cross-multiplying). Ties go
//! to the first server after a cursor that moves on at every choice, so
//! equal servers take turns.
//!
//! A request may use a server it has not tried yet that is in the region
//! that serves now ([`crate::region`]), is not marked down by passive
//! health ([`crate::health`]) and not ejected ([`crate::outlier`]). Among
//! those, servers that pass their active checks ([`crate::active`]) come
//! first, primary before backup; servers failing them are chosen only
//! when no other is left. An upstream of exactly one server is always
//! tried, as nginx does: refusing is then never better than trying. Its
//! failures are still recorded, so `/health/ready` reports them.
//!
//! Choosing takes no lock: counts and health marks are atomics, and the
//! servers a request already tried fit in one `u64` mask.
//!
//! The live state of a server (requests in flight, health, ejection) is
//! shared by the configurations a reload makes, as long as the server
//! keeps its upstream and address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

use crate::active::{self, Active};
use crate::client::{Pool, Target};
use crate::config::{
    ConfigError, HealthCheckConfig, RegionFailoverConfig, UpstreamConfig,
};
use crate::health::{Claim, Clock, Health, Passive};
use crate::metrics::{Metrics, Outcome, ServerMetrics, UpstreamMetrics};
use crate::outlier::{Ejection, Outlier, Verdict};
use crate::region::{self, Failover};
use crate::retry::Policy;

/// The live state of one server, kept across configuration reloads.
#[derive(Debug, Default)]
pub(crate) struct ServerState {
    in_flight: AtomicU32,
    health: Health,
    active: Active,
    ejection: Ejection,
}

/// One server of an upstream: its settings and its live state.
#[derive(Debug)]
pub(crate) struct Server {
    address: Box<str>,
    target: Target,
    weight: u64,
    backup: bool,
    region: Option<Box<str>>,
    /// In the active region, or no region failover at all.
    in_active_region: bool,
    passive: Passive,
    pool: Pool,
    state: Arc<ServerState>,
    metrics: ServerMetrics,
}

impl Server {
    /// Where connections to this server go.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The address as configured (for logs and the `Host` header).
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Its idle keep-alive connections.
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// A named group of servers, with its retry, check and failover rules.
#[derive(Debug)]
pub(crate) struct Upstream {
    name: Box<str>,
    servers: Box<[Server]>,
    cursor: AtomicUsize,
    clock: Clock,
    single: bool,
    policy: Policy,
    connect_timeout: Duration,
    read_timeout: Duration,
    health_check: Option<HealthCheckConfig>,
    outlier: Option<Outlier>,
    failover: Option<(RegionFailoverConfig, Arc<Failover>)>,
    metrics: UpstreamMetrics,
}

/// The servers one request has tried.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Tried(u64);

impl Tried {
    fn has(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    fn add(&mut self, index: usize) {
        self.0 |= 1 << index;
    }
}

/// The best candidate so far in one class of servers.
#[derive(Default, Clone, Copy)]
struct Best {
    index: Option<usize>,
    load: u64,
    weight: u64,
}

impl Best {
    fn offer(&mut self, index: usize, server: &Server) {
        let load = u64::from(server.state.in_flight.load(Ordering::Relaxed));
        let lighter = load * self.weight < self.load * server.weight;
        if self.index.is_none() || lighter {
            *self = Best {
                index: Some(index),
                load,
                weight: server.weight,
            };
        }
    }
}

impl Upstream {
    /// Builds the upstream from a validated configuration, sharing the
    /// live state of `previous` servers at the same address.
    pub(crate) fn new(
        name: &str,
        config: &UpstreamConfig,
        metrics: &Metrics,
        clock: Clock,
        workers: usize,
        previous: Option<&Upstream>,
    ) -> Result<Self, ConfigError> {
        let kept: HashMap<&str, &Arc<ServerState>> = previous
            .map(|p| p.servers.iter().map(|s| (&*s.address, &s.state)))
            .into_iter()
            .flatten()
            .collect();
        let active = config.region_failover.as_ref().map(|f| &*f.active);

        let servers = config
            .servers
            .iter()
            .map(|s| {
                let bad = || ConfigError::BadAddress {
                    upstream: name.to_owned(),
                    address: s.address.clone(),
                };
                s.address
                    .parse::<http::uri::Authority>()
                    .map_err(|_| bad())?;
                let state = kept
                    .get(s.address.as_str())
                    .map_or_else(Arc::default, |state| Arc::clone(state));
                let region = s.region.as_deref();
                Ok(Server {
                    address: s.address.as_str().into(),
                    target: Target::new(&s.address),
                    weight: u64::from(s.weight.max(1)),
                    backup: s.backup,
                    region: region.map(Into::into),
                    in_active_region: active.is_none_or(|a| region == Some(a)),
                    passive: Passive::new(s.max_fails, s.fail_timeout),
                    pool: Pool::new(
                        config.keepalive,
                        config.keepalive_timeout,
                        workers,
                    ),
                    state,
                    metrics: metrics.server(name, &s.address),
                })
            })
            .collect::<Result<Box<[Server]>, _>>()?;

        let failover = config.region_failover.as_ref().map(|f| {
            let old = previous.and_then(|p| {
                p.failover.as_ref().map(|(c, st)| (c.active.as_str(), st))
            });
            (f.clone(), region::carried(old, &f.active))
        });

        Ok(Self {
            name: name.into(),
            single: servers.len() == 1,
            servers,
            cursor: AtomicUsize::new(0),
            clock,
            policy: Policy::new(config),
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            health_check: config.health_check.clone(),
            outlier: config.outlier_detection.as_ref().map(Outlier::new),
            failover,
            metrics: metrics.upstream(name),
        })
    }

    /// The upstream's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Server `index`.
    pub(crate) fn server(&self, index: usize) -> &Server {
        &self.servers[index]
    }

    /// How many servers it has.
    pub(crate) fn len(&self) -> usize {
        self.servers.len()
    }

    /// When to move on to another server.
    pub(crate) fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Longest wait for the response head once connected, and longest
    /// pause between two chunks of the response body.
    pub(crate) fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Longest wait for a new connection.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The active health checks, if any.
    pub(crate) fn health_check(&self) -> Option<&HealthCheckConfig> {
        self.health_check.as_ref()
    }

    /// The region failover, if any.
    pub(crate) fn region_failover(&self) -> Option<&RegionFailoverConfig> {
        self.failover.as_ref().map(|(config, _)| config)
    }

    /// The addresses of its servers (for metrics clean-up on reload).
    pub(crate) fn addresses(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|s| &*s.address)
    }

    /// Chooses a server not in `tried`, adds it there and counts the
    /// request in flight on it until the returned guard is dropped.
    /// `None` when no server may take the request.
    pub(crate) fn select(
        self: &Arc<Self>,
        tried: &mut Tried,
    ) -> Option<InFlight> {
        let now = self.clock.now();
        let mut skip = *tried;

        for _ in 0..self.servers.len() {
            let index = self.least_loaded(skip, now)?;
            let claim = self.claim(index, now);
            skip.add(index);
            if claim == Claim::Lost {
                continue;
            }

            tried.add(index);
            let server = &self.servers[index];
            server.state.in_flight.fetch_add(1, Ordering::Relaxed);
            let trial = claim == Claim::Trial || self.single;
            return Some(InFlight {
                upstream: Arc::clone(self),
                index,
                trial,
            });
        }

        None
    }

    fn claim(&self, index: usize, now: u64) -> Claim {
        if self.single {
            return Claim::Normal;
        }

        let server = &self.servers[index];
        server.state.health.claim(now, server.passive)
    }

    /// The least loaded server a request may use, best class first:
    /// healthy primary, healthy backup, unhealthy primary, unhealthy
    /// backup (healthy as the active checks say).
    fn least_loaded(&self, skip: Tried, now: u64) -> Option<usize> {
        let n = self.servers.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        let passive_serves = self.passive_serves();
        let mut classes = [Best::default(); 4];

        for k in 0..n {
            let i = if start + k < n {
                start + k
            } else {
                start + k - n
            };
            let server = &self.servers[i];
            if skip.has(i) || !self.may_use(server, passive_serves, now) {
                continue;
            }

            let sick = !self.single && !server.state.active.is_healthy();
            let class = usize::from(sick) * 2 + usize::from(server.backup);
            classes[class].offer(i, server);
        }

        classes.iter().find_map(|best| best.index)
    }

    /// Region, passive health and ejection allow sending to `server`.
    fn may_use(
        &self,
        server: &Server,
        passive_serves: Option<bool>,
        now: u64,
    ) -> bool {
        if self.single {
            return true;
        }
        if passive_serves.is_some_and(|p| p == server.in_active_region) {
            return false;
        }

        let state = &server.state;
        let ejected = self.outlier.is_some() && state.ejection.is_ejected(now);

        state.health.is_available(now) && !ejected
    }

    /// `Some(true)` while the passive region serves; `None` without
    /// region failover.
    fn passive_serves(&self) -> Option<bool> {
        self.failover.as_ref().map(|(_, f)| f.passive_serves())
    }

    /// Whether `server` may be chosen now and passes its checks.
    fn is_healthy(&self, server: &Server, now: u64) -> bool {
        let state = &server.state;
        let ejected = self.outlier.is_some() && state.ejection.is_ejected(now);

        state.health.is_available(now) && !ejected && state.active.is_healthy()
    }

    /// Whether some server of the side that serves is healthy now.
    pub(crate) fn is_ready(&self) -> bool {
        let now = self.clock.now();
        let passive_serves = self.passive_serves();
        let serving = |s: &&Server| passive_serves != Some(s.in_active_region);

        self.servers
            .iter()
            .filter(serving)
            .any(|s| self.is_healthy(s, now))
    }

    /// Whole seconds until the first server may be tried again (at
    /// least 1), for `Retry-After`.
    pub(crate) fn retry_after(&self) -> u64 {
        let now = self.clock.now();
        let soonest = self.servers.iter().filter_map(|s| {
            let state = &s.state;
            let down = state.health.down_for(now);
            let ejected = state.ejection.ejected_for(now);
            down.max(ejected)
        });

        soonest.min().map_or(1, |ms| ms.div_ceil(1_000).max(1))
    }

    /// Records one active check of server `index`.
    pub(crate) fn record_check(
        &self,
        index: usize,
        passed: bool,
        config: &HealthCheckConfig,
    ) {
        let server = &self.servers[index];
        server.metrics.checked(passed);
        match server.state.active.record(passed, config) {
            active::Change::None => {}
            active::Change::Down => tracing::warn!(
                event.action = "upstream-server-unhealthy",
                upstream = %self.name,
                server = %server.address,
                path = %config.path,
                "Upstream server failed its health checks"
            ),
            active::Change::Up => tracing::info!(
                event.action = "upstream-server-healthy",
                upstream = %self.name,
                server = %server.address,
                "Upstream server passes its health checks again"
            ),
        }
    }

    /// One look at the active region: fails over or back as it says.
    pub(crate) fn look_at_regions(&self, config: &RegionFailoverConfig) {
        let Some((_, failover)) = &self.failover else {
            return;
        };
        let now = self.clock.now();
        let healthy = self
            .servers
            .iter()
            .filter(|s| s.in_active_region)
            .any(|s| self.is_healthy(s, now));

        match failover.record(healthy, config.threshold) {
            region::Change::None => {}
            region::Change::FailedOver => tracing::warn!(
                event.action = "upstream-region-failover",
                upstream = %self.name,
                region = %config.active,
                checks = config.threshold,
                "Active region has no healthy server; passive region serves"
            ),
            region::Change::Restored => tracing::info!(
                event.action = "upstream-region-restored",
                upstream = %self.name,
                region = %config.active,
                "Active region is healthy again and serves"
            ),
        }
    }

    /// Every server's state, for `/admin/upstreams` and `/health`.
    pub(crate) fn report(&self) -> UpstreamReport<'_> {
        let now = self.clock.now();
        let passive_serves = self.passive_serves();
        let servers = self
            .servers
            .iter()
            .map(|s| {
                let usable = self.may_use(s, passive_serves, now);
                s.report(now, usable, self)
            })
            .collect();
        let region_failover = self.failover.as_ref().map(|(c, f)| {
            let serving = if f.passive_serves() {
                "passive"
            } else {
                "active"
            };
            RegionReport {
                active: &c.active,
                serving,
                misses: f.misses(),
                threshold: c.threshold,
            }
        });

        UpstreamReport {
            name: &self.name,
            ready: self.is_ready(),
            region_failover,
            servers,
        }
    }

    /// Publishes every server's state to the gauges.
    pub(crate) fn publish(&self) {
        let now = self.clock.now();
        let passive_serves = self.passive_serves();
        for s in self.servers.iter() {
            let state = &s.state;
            let usable = self.may_use(s, passive_serves, now)
                && (self.single || state.active.is_healthy());
            let in_flight = state.in_flight.load(Ordering::Relaxed);
            let ejected = state.ejection.is_ejected(now);
            s.metrics.publish(
                usable,
                in_flight,
                state.active.is_healthy(),
                ejected,
            );
        }
        self.metrics.publish(passive_serves == Some(true));
    }

    /// Whether one more server may be ejected now.
    fn may_eject(&self, outlier: Outlier, now: u64) -> bool {
        let ejected = self
            .servers
            .iter()
            .filter(|s| s.state.ejection.is_ejected(now))
            .count();

        ejected < outlier.max_ejected(self.servers.len())
    }
}

/// One request in flight on one server; dropping it ends the count.
///
/// It lives as long as the response body it belongs to, so a request
/// counts until its answer is fully sent, fails or is abandoned.
#[derive(Debug)]
pub(crate) struct InFlight {
    upstream: Arc<Upstream>,
    index: usize,
    trial: bool,
}

impl InFlight {
    /// The server this request went to.
    pub(crate) fn server(&self) -> &Server {
        &self.upstream.servers[self.index]
    }

    /// The server answered `status`; `failure` when that status is
    /// listed in `next_upstream` and counts as a failure (nginx).
    pub(crate) fn answered(&self, status: StatusCode, failure: bool) {
        if failure {
            self.passive_failure(Outcome::HttpError);
        } else {
            self.passive_success();
        }

        if status.is_server_error() {
            self.eject_maybe();
        } else {
            self.server().state.ejection.record_success();
        }
    }

    /// The attempt failed without an answer, in a way that does not
    /// count against the server (see [`crate::retry::Failure::counts`]):
    /// only the metric counts it.
    pub(crate) fn failed_uncounted(&self, outcome: Outcome) {
        self.server().metrics.count(outcome);
    }

    /// The attempt failed without an answer.
    pub(crate) fn failed(&self, outcome: Outcome) {
        self.passive_failure(outcome);
        self.eject_maybe();
    }

    fn passive_success(&self) {
        let server = self.server();
        server.metrics.count(Outcome::Success);
        if server.state.health.record_success(self.trial) {
            tracing::info!(
                event.action = "upstream-server-restored",
                upstream = %self.upstream.name,
                server = %server.address,
                "Upstream server available again"
            );
        }
    }

    fn passive_failure(&self, outcome: Outcome) {
        let server = self.server();
        server.metrics.count(outcome);
        let now = self.upstream.clock.now();
        if server.state.health.record_failure(now, server.passive) {
            tracing::warn!(
                event.action = "upstream-server-down",
                upstream = %self.upstream.name,
                server = %server.address,
                ?outcome,
                "Upstream server marked unavailable"
            );
        }
    }

    fn eject_maybe(&self) {
        let Some(outlier) = self.upstream.outlier else {
            return;
        };
        let server = self.server();
        let now = self.upstream.clock.now();
        let room = || self.upstream.may_eject(outlier, now);

        match server.state.ejection.record_failure(now, outlier, room) {
            Verdict::Stays => {}
            Verdict::Ejected(ms) => tracing::warn!(
                event.action = "upstream-server-ejected",
                upstream = %self.upstream.name,
                server = %server.address,
                ejection_ms = ms,
                "Upstream server ejected after consecutive failures"
            ),
            Verdict::Spared => tracing::info!(
                event.action = "upstream-server-spared",
                upstream = %self.upstream.name,
                server = %server.address,
                "Ejection skipped: max_ejection_percent reached"
            ),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.upstream.servers[self.index].state;
        state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The state of one upstream, as `/admin/upstreams` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct UpstreamReport<'a> {
    pub(crate) name: &'a str,
    pub(crate) ready: bool,
    pub(crate) region_failover: Option<RegionReport<'a>>,
    pub(crate) servers: Vec<ServerReport<'a>>,
}

/// Which region serves an upstream with region failover.
#[derive(Debug, Serialize)]
pub(crate) struct RegionReport<'a> {
    pub(crate) active: &'a str,
    pub(crate) serving: &'static str,
    pub(crate) misses: u32,
    pub(crate) threshold: u32,
}

/// The state of one server, as `/admin/upstreams` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ServerReport<'a> {
    pub(crate) address: &'a str,
    pub(crate) region: Option<&'a str>,
    pub(crate) weight: u64,
    pub(crate) backup: bool,
    pub(crate) in_flight: u32,
    pub(crate) idle_connections: usize,
    /// May take a request now (region, passive health, ejection and
    /// active checks all allow it).
    pub(crate) available: bool,
    /// Passive health: failures in the window, time left marked down.
    pub(crate) fails: u32,
    pub(crate) down_for_ms: Option<u64>,
    /// Active checks: `healthy`, `unhealthy` or `unchecked`.
    pub(crate) active_health: &'static str,
    pub(crate) check_fails: u32,
    pub(crate) check_passes: u32,
    /// Outlier ejection.
    pub(crate) ejected: bool,
    pub(crate) ejected_for_ms: Option<u64>,
    pub(crate) ejections: u32,
    pub(crate) failures_in_row: u32,
}

impl Server {
    fn report(
        &self,
        now: u64,
        usable: bool,
        upstream: &Upstream,
    ) -> ServerReport<'_> {
        let state = &self.state;
        let healthy = state.active.is_healthy();
        let active_health = match (&upstream.health_check, healthy) {
            (None, _) => "unchecked",
            (Some(_), true) => "healthy",
            (Some(_), false) => "unhealthy",
        };

        ServerReport {
            address: &self.address,
            region: self.region.as_deref(),
            weight: self.weight,
            backup: self.backup,
            in_flight: state.in_flight.load(Ordering::Relaxed),
            idle_connections: self.pool.idle(),
            available: usable && (upstream.single || healthy),
            fails: state.health.fails(),
            down_for_ms: state.health.down_for(now),
            active_health,
            check_fails: state.active.fails(),
            check_passes: state.active.passes(),
            ejected: state.ejection.is_ejected(now),
            ejected_for_ms: state.ejection.ejected_for(now),
            ejections: state.ejection.ejections(),
            failures_in_row: state.ejection.row(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::config::{OutlierConfig, ServerConfig};
    use crate::metrics::Families;

    /// An upstream of servers with these (weight, backup) pairs; nothing
    /// is connected, only chosen.
    fn upstream(servers: &[(u32, bool)]) -> Arc<Upstream> {
        let mut config = UpstreamConfig::with(vec![]);
        config.servers = servers
            .iter()
            .enumerate()
            .map(|(i, &(weight, backup))| ServerConfig {
                weight,
                backup,
                ..ServerConfig::at(SocketAddr::from((
                    [127, 0, 0, 1],
                    9 + i as u16,
                )))
            })
            .collect();

        build(&config, None)
    }

    fn build(config: &UpstreamConfig, old: Option<&Upstream>) -> Arc<Upstream> {
        let metrics = Metrics::new(Arc::new(Families::new()), vec![]);
        let clock = old.map_or_else(Clock::new, |o| o.clock);

        let up = Upstream::new("books", config, &metrics, clock, 1, old);

        Arc::new(up.unwrap())
    }

    fn ok(guard: &InFlight) {
        guard.answered(StatusCode::OK, false);
    }

    /// Which servers `n` requests in a row (each ended at once) go to.
    fn spread(up: &Arc<Upstream>, n: usize) -> Vec<usize> {
        (0..n).map(|_| pick(up).index).collect()
    }

    fn pick(upstream: &Arc<Upstream>) -> InFlight {
        upstream.select(&mut Tried::default()).expect("a server")
    }

    #[tokio::test]
    async fn weights_divide_the_requests_in_flight() {
        let up = upstream(&[(2, false), (1, false)]);

        let held: Vec<_> = (0..6).map(|_| pick(&up)).collect();

        let on = |i| held.iter().filter(|g| g.index == i).count();
        assert_eq!((on(0), on(1)), (4, 2));
    }

    #[tokio::test]
    async fn dropping_the_guard_ends_the_count() {
        let up = upstream(&[(1, false), (1, false)]);
        let first = pick(&up);
        let second = pick(&up);
        assert_ne!(first.index, second.index);

        drop(first);

        let report = up.report();
        let counts: Vec<_> =
            report.servers.iter().map(|s| s.in_flight).collect();
        assert_eq!(counts.iter().sum::<u32>(), 1);
    }

    #[tokio::test]
    async fn a_request_never_meets_the_same_server_twice() {
        let up = upstream(&[(1, false), (1, false), (1, true)]);
        let mut tried = Tried::default();

        let order: Vec<_> = std::iter::from_fn(|| up.select(&mut tried))
            .map(|g| (g.index, g.server().backup))
            .collect();

        assert_eq!(order.len(), 3);
        assert_eq!(order[2], (2, true), "the backup comes last");
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_comes_back_through_one_trial_after_fail_timeout() {
        let up = upstream(&[(1, false), (1, true)]);
        pick(&up).failed(Outcome::ConnectError);

        let during = pick(&up);
        assert!(during.server().backup, "the primary is down");
        drop(during);

        tokio::time::advance(Duration::from_secs(10)).await;
        let trial = pick(&up);
        let meanwhile = pick(&up);
        assert!(!trial.server().backup, "one trial goes to the primary");
        assert!(meanwhile.server().backup, "only one");

        ok(&trial);
        drop((trial, meanwhile));
        assert!(!pick(&up).server().backup);
        assert!(!pick(&up).server().backup);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_keeps_the_primary_out() {
        let up = upstream(&[(1, false), (1, true)]);
        pick(&up).failed(Outcome::ConnectError);
        tokio::time::advance(Duration::from_secs(10)).await;

        pick(&up).failed(Outcome::ConnectError);

        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(pick(&up).server().backup);
        assert_eq!(up.retry_after(), 1);
    }

    #[tokio::test]
    async fn a_lone_server_is_always_tried_but_reported_down() {
        let up = upstream(&[(1, false)]);
        pick(&up).failed(Outcome::ConnectError);

        assert!(!up.is_ready());
        let again = pick(&up);

        ok(&again);
        assert!(up.is_ready(), "a success restores it");
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_5xx_eject_for_longer_each_time() {
        let mut config = UpstreamConfig::with(vec![]);
        config.servers = (0..3)
            .map(|i| {
                ServerConfig::at(SocketAddr::from(([127, 0, 0, 1], 9 + i)))
            })
            .collect();
        config.servers.iter_mut().for_each(|s| s.max_fails = 0);
        config.outlier_detection = Some(OutlierConfig {
            consecutive_5xx: 2,
            base_ejection_time: Duration::from_secs(10),
            ..OutlierConfig::default()
        });
        let up = build(&config, None);
        let fail = |up: &Arc<Upstream>| {
            let mut tried = Tried::default();
            let guard = up.select(&mut tried).unwrap();
            let index = guard.index;
            if index == 0 {
                guard.answered(StatusCode::INTERNAL_SERVER_ERROR, false);
            } else {
                ok(&guard);
            }
            index
        };

        // Server 0 answers 500 every time: out after its second.
        for _ in 0..6 {
            fail(&up);
        }
        assert!(up.report().servers[0].ejected);
        assert!(!spread(&up, 6).contains(&0), "ejected for 10 s");

        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(spread(&up, 3).contains(&0), "back after 10 s");

        // Still failing: ejected again within the threshold, for 20 s.
        let mut failed = 0;
        while !up.report().servers[0].ejected {
            failed += usize::from(fail(&up) == 0);
        }
        assert!(failed <= 2, "re-ejected after {failed} failures");
        assert_eq!(up.report().servers[0].ejections, 2);
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(!spread(&up, 6).contains(&0), "still out at 19 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(spread(&up, 3).contains(&0));
    }

    #[tokio::test]
    async fn ejection_never_takes_more_than_its_share() {
        let mut config = UpstreamConfig::with(vec![]);
        config.servers = (0..2)
            .map(|i| {
                ServerConfig::at(SocketAddr::from(([127, 0, 0, 1], 9 + i)))
            })
            .collect();
        config.outlier_detection = Some(OutlierConfig {
            consecutive_5xx: 1,
            ..OutlierConfig::default()
        });
        config.servers.iter_mut().for_each(|s| s.max_fails = 0);
        let up = build(&config, None);

        for _ in 0..4 {
            let guard = pick(&up);
            guard.answered(StatusCode::BAD_GATEWAY, false);
        }

        let ejected = up.report().servers.iter().filter(|s| s.ejected).count();
        assert_eq!(ejected, 1, "10 % of two servers is still one, not two");
        assert!(up.is_ready());
    }

    #[tokio::test]
    async fn unhealthy_servers_are_chosen_only_when_none_is_healthy() {
        let mut config = UpstreamConfig::with(vec![]);
        config.servers = (0..3)
            .map(|i| {
                ServerConfig::at(SocketAddr::from(([127, 0, 0, 1], 9 + i)))
            })
            .collect();
        config.servers[2].backup = true;
        let check = HealthCheckConfig::default();
        config.health_check = Some(check.clone());
        let up = build(&config, None);

        up.record_check(0, false, &check);
        assert_eq!(spread(&up, 4), [1, 1, 1, 1]);
        assert!(!up.report().servers[0].available);

        up.record_check(1, false, &check);
        assert_eq!(spread(&up, 2), [2, 2], "the healthy backup");

        up.record_check(2, false, &check);
        let all = spread(&up, 4);
        assert!(all.contains(&0) && all.contains(&1), "panic mode: {all:?}");
        assert!(!all.contains(&2), "primaries before the backup");
        assert!(!up.is_ready());

        up.record_check(1, true, &check);
        assert_eq!(spread(&up, 2), [1, 1]);
    }

    #[tokio::test]
    async fn the_passive_region_serves_only_after_threshold_looks() {
        let mut config = UpstreamConfig::with(vec![]);
        config.servers = (0..4)
            .map(|i| ServerConfig {
                region: Some(if i < 2 { "east" } else { "west" }.into()),
                ..ServerConfig::at(SocketAddr::from(([127, 0, 0, 1], 9 + i)))
            })
            .collect();
        let check = HealthCheckConfig::default();
        config.health_check = Some(check.clone());
        let failover = RegionFailoverConfig::new("east");
        config.region_failover = Some(failover.clone());
        let up = build(&config, None);

        assert!(spread(&up, 8).iter().all(|&i| i < 2), "east serves");
        up.record_check(0, false, &check);
        up.record_check(1, false, &check);
        for _ in 0..2 {
            up.look_at_regions(&failover);
            let all = spread(&up, 4);
            assert!(all.iter().all(|&i| i < 2), "still east: {all:?}");
        }

        up.look_at_regions(&failover);
        assert!(spread(&up, 8).iter().all(|&i| i >= 2), "west serves");
        assert_eq!(up.report().region_failover.unwrap().serving, "passive");

        up.record_check(1, true, &check);
        up.look_at_regions(&failover);
        assert!(spread(&up, 4).iter().all(|&i| i == 1), "back east");
    }

    #[tokio::test]
    async fn a_reload_keeps_the_state_of_servers_that_stay() {
        let up = upstream(&[(1, false), (1, false)]);
        let held = pick(&up);
        let index = held.index;
        pick(&up).failed(Outcome::ConnectError);

        let mut config = UpstreamConfig::with(vec![]);
        config.servers = (0..3)
            .map(|i| {
                ServerConfig::at(SocketAddr::from(([127, 0, 0, 1], 9 + i)))
            })
            .collect();
        let next = build(&config, Some(&up));

        let report = next.report();
        assert_eq!(report.servers[index].in_flight, 1, "{report:?}");
        assert!(!report.servers[1 - index].available, "still marked down");
        assert!(report.servers[2].available, "the new one");
        drop(held);
        assert_eq!(next.report().servers[index].in_flight, 0);
    }
}
