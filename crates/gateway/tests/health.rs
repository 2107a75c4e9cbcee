//! Active health checks, outlier ejection and region failover, on
//! tokio's paused clock: the gateway serves on the test's runtime, the
//! mocks answer on loopback, and time moves only when every task waits.

mod common;

use std::time::Duration;

use common::{answered_by, books, books_on_test_runtime, Gateway, Upstream};
use lectern_gateway::{HealthCheckConfig, OutlierConfig, RegionFailoverConfig};
use tokio::time::sleep;

const SECOND: Duration = Duration::from_secs(1);

fn count(names: &[String], name: &str) -> usize {
    names.iter().filter(|n| *n == name).count()
}

#[tokio::test(start_paused = true)]
async fn failing_checks_take_a_server_out_and_passing_ones_bring_it_back() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    a.set_ready(false);
    let mut config = books_on_test_runtime(&[a.addr, b.addr]).await;
    books(&mut config).health_check = Some(HealthCheckConfig {
        interval: 5 * SECOND,
        fails: 2,
        passes: 2,
        ..HealthCheckConfig::default()
    });
    let gateway = Gateway::start(config).await;

    // Checks at 0 s and 5 s fail; until the second, A still serves.
    sleep(SECOND).await;
    let early = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&early, "a"), 2, "{early:?}");

    sleep(5 * SECOND).await;
    let out = answered_by(&gateway, "/api/books", 6).await;
    assert_eq!(count(&out, "b"), 6, "{out:?}");
    let servers = gateway.servers("book-service").await;
    assert_eq!(servers[0]["active_health"], "unhealthy");
    assert_eq!(servers[0]["available"], false);
    assert_eq!(servers[1]["active_health"], "healthy");

    // Ready again: passes at 10 s and 15 s bring it back.
    a.set_ready(true);
    sleep(5 * SECOND).await;
    let one_pass = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&one_pass, "b"), 4, "one pass is not enough");
    sleep(5 * SECOND).await;
    let back = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&back, "a"), 2, "{back:?}");
    assert!(a.checks() >= 4, "checked {} times", a.checks());
    assert_eq!(common::get(&gateway.url("/health/ready")).await.status, 200);
}

#[tokio::test(start_paused = true)]
async fn consecutive_5xx_eject_longer_each_time_and_again_within_threshold() {
    let bad = Upstream::failing("bad", 500).await;
    let good = Upstream::start("good").await;
    let mut config = books_on_test_runtime(&[bad.addr, good.addr]).await;
    let upstream = books(&mut config);
    upstream.outlier_detection = Some(OutlierConfig {
        consecutive_5xx: 3,
        base_ejection_time: 10 * SECOND,
        max_ejection_percent: 50,
        ..OutlierConfig::default()
    });
    let gateway = Gateway::start(config).await;

    // Ties rotate: `bad` answers every other request until its third 500.
    let first = answered_by(&gateway, "/api/books", 8).await;
    assert_eq!(count(&first, "bad"), 3, "{first:?}");
    let servers = gateway.servers("book-service").await;
    assert_eq!(servers[0]["ejected"], true);
    assert_eq!(servers[0]["ejections"], 1);
    assert_eq!(servers[0]["ejected_for_ms"], 10_000);

    sleep(9 * SECOND).await;
    let during = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&during, "good"), 4, "ejected for 10 s");

    // Back at 10 s, still failing: out again after three more, for 20 s.
    sleep(2 * SECOND).await;
    let again = answered_by(&gateway, "/api/books", 8).await;
    assert_eq!(count(&again, "bad"), 3, "{again:?}");
    let servers = gateway.servers("book-service").await;
    assert_eq!(servers[0]["ejections"], 2);
    assert_eq!(servers[0]["ejected_for_ms"], 20_000);

    sleep(19 * SECOND).await;
    let late = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&late, "good"), 4, "still out at 19 s of 20");
    sleep(2 * SECOND).await;
    let returned = answered_by(&gateway, "/api/books", 2).await;
    assert_eq!(count(&returned, "bad"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_passive_region_serves_after_three_failed_looks_and_hands_back() {
    let east = Upstream::start("east").await;
    let west = Upstream::start("west").await;
    east.set_ready(false);
    let mut config = books_on_test_runtime(&[east.addr, west.addr]).await;
    let upstream = books(&mut config);
    upstream.servers[0].region = Some("east".into());
    upstream.servers[1].region = Some("west".into());
    upstream.health_check = Some(HealthCheckConfig {
        interval: 5 * SECOND,
        ..HealthCheckConfig::default()
    });
    // The source design: a look every 30 s, failover after 3 in a row.
    upstream.region_failover = Some(RegionFailoverConfig::new("east"));
    let gateway = Gateway::start(config).await;

    // East fails its checks from 0 s; looks at 30, 60 and 90 s.
    sleep(85 * SECOND).await;
    let before = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&before, "east"), 4, "east still serves: {before:?}");
    let report = admin_region(&gateway).await;
    assert_eq!(report["serving"], "active");
    assert_eq!(report["misses"], 2);

    sleep(10 * SECOND).await;
    let after = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&after, "west"), 4, "west serves: {after:?}");
    assert_eq!(admin_region(&gateway).await["serving"], "passive");
    let metrics = gateway.metrics().await;
    let failed_over = common::series(
        &metrics,
        "gateway_upstream_failed_over",
        &[("upstream", "book-service")],
    );
    assert_eq!(failed_over, 1.0);

    // East recovers: checks see it at 100 s, the look at 120 s hands back.
    east.set_ready(true);
    sleep(10 * SECOND).await;
    let still = answered_by(&gateway, "/api/books", 2).await;
    assert_eq!(count(&still, "west"), 2, "until the next look");
    sleep(20 * SECOND).await;
    let back = answered_by(&gateway, "/api/books", 4).await;
    assert_eq!(count(&back, "east"), 4, "back east: {back:?}");
    assert_eq!(admin_region(&gateway).await["serving"], "active");
}

async fn admin_region(gateway: &Gateway) -> serde_json::Value {
    let reply = common::get(&gateway.url("/admin/upstreams")).await;
    let all = reply.json();
    let list = all["upstreams"].as_array().unwrap();
    let books = list.iter().find(|u| u["name"] == "book-service").unwrap();

    books["region_failover"].clone()
}
