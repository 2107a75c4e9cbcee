//! Checks on a parsed configuration that serde cannot express.

use std::collections::HashSet;

use http::uri::Authority;

use super::{
    GatewayConfig, HealthCheckConfig, NextUpstream, OutlierConfig,
    RegionFailoverConfig, RouteConfig, UpstreamConfig,
};

/// Most servers in one upstream: a request remembers the servers it tried
/// in one 64-bit mask, so that choosing a server never allocates.
pub(crate) const MAX_SERVERS: usize = 64;

/// Path prefixes the gateway answers itself and never forwards.
const RESERVED: [&str; 4] = ["/internal", "/health", "/metrics", "/admin"];

/// A configuration that parses but describes an impossible gateway.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A route names an upstream that is not defined.
    #[error("route `{prefix}` names unknown upstream `{upstream}`")]
    UnknownUpstream {
        /// The route.
        prefix: String,
        /// The missing upstream.
        upstream: String,
    },
    /// A prefix is empty, lacks the leading `/` or ends with `/`.
    #[error("route prefix `{0}` must start with `/` and not end with `/`")]
    BadPrefix(String),
    /// A prefix would expose a path the gateway keeps for itself.
    #[error("route prefix `{0}` overlaps a reserved path ({RESERVED:?})")]
    ReservedPrefix(String),
    /// Two routes share a prefix.
    #[error("route prefix `{0}` appears twice")]
    DuplicatePrefix(String),
    /// An upstream has no server that is not a backup.
    #[error("upstream `{0}` has no primary (non-backup) server")]
    NoPrimary(String),
    /// An upstream has more servers than a request can track.
    #[error("upstream `{0}` has more than {MAX_SERVERS} servers")]
    TooManyServers(String),
    /// A server address is not `host:port`.
    #[error("server `{address}` of upstream `{upstream}` is not host:port")]
    BadAddress {
        /// The upstream.
        upstream: String,
        /// The address as written.
        address: String,
    },
    /// A server has weight 0.
    #[error("server `{address}` of upstream `{upstream}` has weight 0")]
    ZeroWeight {
        /// The upstream.
        upstream: String,
        /// The server.
        address: String,
    },
    /// `off` is combined with other `next_upstream` conditions.
    #[error("upstream `{0}`: next_upstream `off` must stand alone")]
    OffNotAlone(String),
    /// A timeout that must be positive is zero.
    #[error("upstream `{0}`: connect_timeout and read_timeout must be > 0")]
    ZeroTimeout(String),
    /// `health_check` has an impossible value.
    #[error("upstream `{upstream}`: health_check {reason}")]
    BadHealthCheck {
        /// The upstream.
        upstream: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `outlier_detection` has an impossible value.
    #[error("upstream `{upstream}`: outlier_detection {reason}")]
    BadOutlier {
        /// The upstream.
        upstream: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `region_failover` cannot work with these servers.
    #[error("upstream `{upstream}`: region_failover {reason}")]
    BadRegions {
        /// The upstream.
        upstream: String,
        /// What is wrong.
        reason: String,
    },
}

pub(super) fn config(config: &GatewayConfig) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();

    for route in &config.routes {
        self::route(route, config)?;
        if !seen.insert(route.prefix.as_str()) {
            return Err(ConfigError::DuplicatePrefix(route.prefix.clone()));
        }
    }

    for (name, upstream) in &config.upstreams {
        self::upstream(name, upstream)?;
    }

    Ok(())
}

fn route(
    route: &RouteConfig,
    config: &GatewayConfig,
) -> Result<(), ConfigError> {
    let prefix = route.prefix.as_str();
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        return Err(ConfigError::BadPrefix(prefix.to_owned()));
    }

    if RESERVED.iter().any(|r| overlaps(prefix, r)) {
        return Err(ConfigError::ReservedPrefix(prefix.to_owned()));
    }

    if !config.upstreams.contains_key(&route.upstream) {
        return Err(ConfigError::UnknownUpstream {
            prefix: prefix.to_owned(),
            upstream: route.upstream.clone(),
        });
    }

    Ok(())
}

/// Whether one prefix matches paths of the other, segment-wise.
fn overlaps(a: &str, b: &str) -> bool {
    let under = |p: &str, q: &str| {
        p == q || (p.starts_with(q) && p.as_bytes()[q.len()] == b'/')
    };

    under(a, b) || under(b, a)
}

fn upstream(name: &str, upstream: &UpstreamConfig) -> Result<(), ConfigError> {
    if !upstream.servers.iter().any(|s| !s.backup) {
        return Err(ConfigError::NoPrimary(name.to_owned()));
    }

    if upstream.servers.len() > MAX_SERVERS {
        return Err(ConfigError::TooManyServers(name.to_owned()));
    }

    let off = upstream.next_upstream.contains(&NextUpstream::Off);
    if off && upstream.next_upstream.len() > 1 {
        return Err(ConfigError::OffNotAlone(name.to_owned()));
    }

    if upstream.connect_timeout.is_zero() || upstream.read_timeout.is_zero() {
        return Err(ConfigError::ZeroTimeout(name.to_owned()));
    }

    if let Some(check) = &upstream.health_check {
        health_check(check).map_err(|reason| ConfigError::BadHealthCheck {
            upstream: name.to_owned(),
            reason,
        })?;
    }

    if let Some(outlier) = &upstream.outlier_detection {
        outlier_detection(outlier).map_err(|reason| {
            ConfigError::BadOutlier {
                upstream: name.to_owned(),
                reason,
            }
        })?;
    }

    if let Some(failover) = &upstream.region_failover {
        regions(upstream, failover).map_err(|reason| {
            ConfigError::BadRegions {
                upstream: name.to_owned(),
                reason,
            }
        })?;
    }

    upstream.servers.iter().try_for_each(|server| {
        let err = |address: &str| (name.to_owned(), address.to_owned());
        if server.weight == 0 {
            let (upstream, address) = err(&server.address);
            return Err(ConfigError::ZeroWeight { upstream, address });
        }

        if !has_port(&server.address) {
            let (upstream, address) = err(&server.address);
            return Err(ConfigError::BadAddress { upstream, address });
        }

        Ok(())
    })
}

fn health_check(check: &HealthCheckConfig) -> Result<(), &'static str> {
    if !check.path.starts_with('/') {
        return Err("path must start with `/`");
    }
    if check.path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("path must be visible ASCII");
    }
    if check.interval.is_zero() || check.timeout.is_zero() {
        return Err("interval and timeout must be > 0");
    }
    if check.fails == 0 || check.passes == 0 {
        return Err("fails and passes must be > 0");
    }

    Ok(())
}

fn outlier_detection(outlier: &OutlierConfig) -> Result<(), &'static str> {
    if outlier.consecutive_5xx == 0 {
        return Err("consecutive_5xx must be > 0");
    }
    if outlier.base_ejection_time.is_zero() {
        return Err("base_ejection_time must be > 0");
    }
    if outlier.max_ejection_percent > 100 {
        return Err("max_ejection_percent must be at most 100");
    }

    Ok(())
}

/// Every server has a region, the active region has a primary server,
/// so does every other region, and there is another region.
fn regions(
    upstream: &UpstreamConfig,
    failover: &RegionFailoverConfig,
) -> Result<(), String> {
    if upstream.health_check.is_none() {
        // Without checks nothing sees a region recover while it gets no
        // traffic, and passive marks expire into false recoveries.
        return Err("needs health_check".to_owned());
    }
    if failover.interval.is_zero() || failover.threshold == 0 {
        return Err("interval and threshold must be > 0".to_owned());
    }

    let mut regions: Vec<(&str, bool)> = Vec::new();
    for server in &upstream.servers {
        let Some(region) = server.region.as_deref() else {
            return Err(format!("server `{}` has no region", server.address));
        };
        match regions.iter_mut().find(|(r, _)| *r == region) {
            Some((_, primary)) => *primary |= !server.backup,
            None => regions.push((region, !server.backup)),
        }
    }

    if !regions.iter().any(|(r, _)| *r == failover.active) {
        return Err(format!(
            "active region `{}` has no server",
            failover.active
        ));
    }
    if regions.len() < 2 {
        return Err("needs servers in a second region".to_owned());
    }
    if let Some((region, _)) = regions.iter().find(|(_, primary)| !primary) {
        return Err(format!("region `{region}` has no primary server"));
    }

    Ok(())
}

fn has_port(address: &str) -> bool {
    let ok = address.parse::<Authority>().ok();

    ok.is_some_and(|a| a.port_u16().is_some() && !a.as_str().contains('@'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn local() -> GatewayConfig {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        GatewayConfig::local(vec![addr, addr], addr, addr)
    }

    #[test]
    fn the_local_configuration_is_valid() {
        assert_eq!(local().validate(), Ok(()));
    }

    #[test]
    fn internal_paths_cannot_be_routed() {
        for prefix in ["/internal", "/internal/loans", "/health", "/"] {
            let mut config = local();
            config.routes[0].prefix = prefix.to_owned();

            assert!(config.validate().is_err(), "{prefix} was accepted");
        }
    }

    #[test]
    fn prefixes_overlap_only_at_segment_boundaries() {
        assert!(overlaps("/internal/x", "/internal"));
        assert!(overlaps("/health", "/health"));
        assert!(!overlaps("/internals", "/internal"));
        assert!(!overlaps("/api/books", "/api/bookshelf"));
    }

    #[test]
    fn addresses_need_a_port() {
        assert!(has_port("127.0.0.1:80"));
        assert!(has_port("book-service:8081"));
        assert!(has_port("[::1]:8081"));
        assert!(!has_port("book-service"));
        assert!(!has_port("user@host:80"));
    }

    #[test]
    fn an_upstream_needs_a_primary_server() {
        let mut config = local();
        let book = config.upstreams.get_mut("book-service").unwrap();
        book.servers.iter_mut().for_each(|s| s.backup = true);

        let err = config.validate().unwrap_err();

        assert_eq!(err, ConfigError::NoPrimary("book-service".into()));
    }

    #[test]
    fn region_failover_needs_regions_checks_and_two_sides() {
        let mut config = local();
        let book = config.upstreams.get_mut("book-service").unwrap();
        book.region_failover = Some(RegionFailoverConfig::new("east"));
        book.servers[0].region = Some("east".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("has no region"), "{err}");

        let book = config.upstreams.get_mut("book-service").unwrap();
        book.servers[1].region = Some("east".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("second region"), "{err}");

        let book = config.upstreams.get_mut("book-service").unwrap();
        book.servers[1].region = Some("west".into());
        assert_eq!(config.validate(), Ok(()));

        let book = config.upstreams.get_mut("book-service").unwrap();
        book.health_check = None;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("needs health_check"), "{err}");
    }

    #[test]
    fn checks_and_ejection_need_positive_settings() {
        let mut config = local();
        let book = config.upstreams.get_mut("book-service").unwrap();
        book.outlier_detection = Some(OutlierConfig {
            consecutive_5xx: 0,
            ..OutlierConfig::default()
        });
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BadOutlier { .. })
        ));

        let book = config.upstreams.get_mut("book-service").unwrap();
        book.outlier_detection = None;
        book.health_check = Some(HealthCheckConfig {
            path: "health".into(),
            ..HealthCheckConfig::default()
        });
        assert!(matches!(
            config.validate(),
            Err(ConfigError::BadHealthCheck { .. })
        ));
    }

    #[test]
    fn off_stands_alone() {
        let mut config = local();
        let book = config.upstreams.get_mut("book-service").unwrap();
        book.next_upstream.push(NextUpstream::Off);

        assert!(matches!(
            config.validate(),
            Err(ConfigError::OffNotAlone(_))
        ));
    }
}
