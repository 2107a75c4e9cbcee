//! The configuration file: the example in `deploy/` and refused files.

use std::time::Duration;

use lectern_gateway::{
    ConfigError, GatewayConfig, HealthCheckConfig, LoadError, NextUpstream,
};

const EXAMPLE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/gateway.toml");

#[test]
fn the_example_file_loads() {
    let config = GatewayConfig::load(EXAMPLE).unwrap();

    let book = &config.upstreams["book-service"];
    assert!(book.servers.len() >= 2);
    assert!(book.servers.iter().any(|s| s.backup));
    assert!(book.next_upstream.contains(&NextUpstream::Error));
    assert_eq!(config.routes.len(), 5);
    assert!(config.upstreams.contains_key("user-service"));
    assert!(config.upstreams.contains_key("borrowing-service"));

    let check = book.health_check.as_ref().unwrap();
    assert_eq!((check.path.as_str(), check.fails), ("/health/ready", 2));
    assert_eq!(book.outlier_detection.as_ref().unwrap().consecutive_5xx, 5);
    let failover = book.region_failover.as_ref().unwrap();
    assert_eq!(failover.interval, Duration::from_secs(30));
    assert_eq!(failover.threshold, 3);
    let user = &config.upstreams["user-service"];
    assert_eq!(user.health_check, Some(HealthCheckConfig::default()));
}

#[test]
fn defaults_follow_the_readme() {
    let text = r#"
        [[routes]]
        prefix = "/api/books"
        upstream = "books"

        [upstreams.books]
        servers = [{ address = "127.0.0.1:8081" }]
    "#;

    let config = GatewayConfig::from_toml(text).unwrap();

    let books = &config.upstreams["books"];
    let server = &books.servers[0];
    assert_eq!(
        (server.weight, server.max_fails, server.backup),
        (1, 1, false)
    );
    assert_eq!(server.fail_timeout, Duration::from_secs(10));
    assert_eq!(books.connect_timeout, Duration::from_secs(3));
    assert_eq!(books.read_timeout, Duration::from_secs(30));
    assert_eq!(
        books.next_upstream,
        [NextUpstream::Error, NextUpstream::Timeout]
    );
    assert_eq!(books.next_upstream_tries, 0);
    assert_eq!(books.next_upstream_timeout, Duration::ZERO);
    assert_eq!(config.client_max_body_size, 16 << 20);
    assert_eq!(config.client_body_buffer_size, 1 << 20);
    assert!(config.admin_loopback_only);
    assert_eq!(config.worker_threads, None);
    assert!(books.health_check.is_none());
    assert!(books.outlier_detection.is_none());
    assert!(books.region_failover.is_none());
    assert_eq!(server.region, None);
}

#[test]
fn checks_ejection_and_regions_read_with_their_defaults() {
    let text = r#"
        [[routes]]
        prefix = "/api/books"
        upstream = "books"
        [upstreams.books]
        servers = [
          { address = "a:1", region = "east" },
          { address = "b:1", region = "west" },
        ]
        health_check = { interval = "10s" }
        outlier_detection = {}
        region_failover = { active = "east" }
    "#;

    let config = GatewayConfig::from_toml(text).unwrap();

    let books = &config.upstreams["books"];
    let check = books.health_check.as_ref().unwrap();
    assert_eq!(check.interval, Duration::from_secs(10));
    assert_eq!(check.path, "/health/ready");
    assert_eq!(check.timeout, Duration::from_secs(2));
    assert_eq!((check.fails, check.passes), (1, 1));
    let outlier = books.outlier_detection.as_ref().unwrap();
    assert_eq!(outlier.consecutive_5xx, 5);
    assert_eq!(outlier.base_ejection_time, Duration::from_secs(30));
    assert_eq!(outlier.max_ejection_time, Duration::from_secs(300));
    assert_eq!(outlier.max_ejection_percent, 10);
    let failover = books.region_failover.as_ref().unwrap();
    assert_eq!(failover.interval, Duration::from_secs(30));
    assert_eq!(failover.threshold, 3);
}

#[test]
fn region_failover_without_checks_is_refused() {
    let text = r#"
        [[routes]]
        prefix = "/api/books"
        upstream = "books"
        [upstreams.books]
        servers = [
          { address = "a:1", region = "east" },
          { address = "b:1", region = "west" },
        ]
        region_failover = { active = "east" }
    "#;

    let err = GatewayConfig::from_toml(text).unwrap_err();

    assert!(matches!(
        err,
        LoadError::Invalid(ConfigError::BadRegions { .. })
    ));
}

#[test]
fn nginx_units_are_read() {
    let text = r#"
        client_max_body_size = "1m"
        [[routes]]
        prefix = "/api/books"
        upstream = "books"
        [upstreams.books]
        read_timeout = "1500ms"
        next_upstream = ["error", "timeout", "http_502", "non_idempotent"]
        servers = [{ address = "books:8081", fail_timeout = "1m" }]
    "#;

    let config = GatewayConfig::from_toml(text).unwrap();

    assert_eq!(config.client_max_body_size, 1 << 20);
    let books = &config.upstreams["books"];
    assert_eq!(books.read_timeout, Duration::from_millis(1500));
    assert_eq!(books.servers[0].fail_timeout, Duration::from_secs(60));
    assert_eq!(books.next_upstream[2], NextUpstream::Http502);
}

#[test]
fn unknown_keys_and_names_are_refused() {
    let typo = r#"
        routes = []
        [upstreams.books]
        servers = [{ address = "127.0.0.1:1", max_fail = 3 }]
    "#;
    assert!(matches!(
        GatewayConfig::from_toml(typo),
        Err(LoadError::Parse(_))
    ));

    let unknown = r#"
        [[routes]]
        prefix = "/api/books"
        upstream = "nowhere"
        [upstreams.books]
        servers = [{ address = "127.0.0.1:1" }]
    "#;
    let err = GatewayConfig::from_toml(unknown).unwrap_err();
    assert!(matches!(
        err,
        LoadError::Invalid(ConfigError::UnknownUpstream { .. })
    ));
}

#[test]
fn a_missing_file_says_which() {
    let err = GatewayConfig::load("/nonexistent/gateway.toml").unwrap_err();

    assert!(err.to_string().contains("/nonexistent/gateway.toml"));
}
