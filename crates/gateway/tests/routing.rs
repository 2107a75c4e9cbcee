//! Routes, private paths, forwarded headers and the gateway's own routes.

mod common;

use axum::http::{Method, StatusCode};
use common::{get, send, Gateway, Upstream};
use lectern_gateway::GatewayConfig;

struct System {
    book: Upstream,
    user: Upstream,
    borrowing: Upstream,
    gateway: Gateway,
}

async fn system() -> System {
    let book = Upstream::start("book").await;
    let user = Upstream::start("user").await;
    let borrowing = Upstream::start("borrowing").await;
    let config =
        GatewayConfig::local(vec![book.addr], user.addr, borrowing.addr);
    let gateway = Gateway::start(config).await;

    System {
        book,
        user,
        borrowing,
        gateway,
    }
}

#[tokio::test]
async fn each_prefix_reaches_its_upstream() {
    let s = system().await;
    let cases = [
        ("/api/books?q=tolkien", "book"),
        ("/api/books/42", "book"),
        ("/api/copies/B-0001", "book"),
        ("/api/auth/login", "user"),
        ("/api/members/7", "user"),
        ("/api/loans", "borrowing"),
        ("/api/loans/overdue", "borrowing"),
    ];

    for (path, server) in cases {
        let reply = get(&s.gateway.url(path)).await;

        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.server(), server, "{path}");
    }

    let books = s.book.seen();
    assert_eq!(books[0].path, "/api/books");
    assert_eq!(s.user.count(), 2);
    assert_eq!(s.borrowing.count(), 2);
}

#[tokio::test]
async fn the_query_and_body_pass_unchanged() {
    let s = system().await;

    let reply = send(
        Method::POST,
        &s.gateway.url("/api/loans?dry=1"),
        &[("content-type", "application/json")],
        r#"{"member":"C-1","barcode":"B-1"}"#,
    )
    .await;

    assert_eq!(reply.status, StatusCode::OK);
    let seen = &s.borrowing.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body, r#"{"member":"C-1","barcode":"B-1"}"#);
    assert_eq!(reply.json()["path"], "/api/loans");
}

#[tokio::test]
async fn unknown_paths_are_404_problems() {
    let s = system().await;

    for path in ["/", "/api", "/api/bookshelf", "/admin/other", "/API/books"] {
        let reply = get(&s.gateway.url(path)).await;

        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.header("content-type"), "application/problem+json");
        let problem = reply.json();
        assert_eq!(problem["status"], 404);
        assert_eq!(problem["type"], "https://lectern.dev/problems/not-found");
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
    assert_eq!(s.book.count() + s.user.count() + s.borrowing.count(), 0);
}

#[tokio::test]
async fn internal_paths_are_404_and_never_forwarded() {
    let s = system().await;
    let paths = [
        "/internal/copies/B-1",
        "/internal/loans/active-counts?book_ids=a",
        "/internal",
    ];

    for path in paths {
        let reply = get(&s.gateway.url(path)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.header("content-type"), "application/problem+json");

        let post = send(Method::POST, &s.gateway.url(path), &[], "{}").await;
        assert_eq!(post.status, StatusCode::NOT_FOUND, "{path}");
    }

    assert_eq!(s.book.count() + s.user.count() + s.borrowing.count(), 0);
}

#[tokio::test]
async fn dot_segments_cannot_climb_to_internal_paths() {
    let s = system().await;

    for path in [
        "/api/books/../../internal/copies/B-1",
        "/api/books/%2e%2e/%2E%2E/internal/copies/B-1",
    ] {
        let reply = get(&s.gateway.url(path)).await;

        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
    }
    assert_eq!(s.book.count(), 0);
}

#[tokio::test]
async fn forwarded_for_and_a_request_id_arrive_upstream() {
    let s = system().await;

    let reply = get(&s.gateway.url("/api/books/1")).await;

    let seen = &s.book.seen()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    let id = &seen.headers["x-request-id"];
    assert_eq!(id.len(), 36, "a generated UUID: {id}");
    assert_eq!(reply.header("x-request-id"), id);
    assert!(seen.headers["traceparent"].starts_with("00-"));
}

#[tokio::test]
async fn client_ids_and_traces_pass_through_and_proxies_are_appended() {
    let s = system().await;
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let reply = send(
        Method::GET,
        &s.gateway.url("/api/members"),
        &[
            ("x-request-id", "req-123"),
            ("traceparent", trace),
            ("x-forwarded-for", "203.0.113.9"),
        ],
        "",
    )
    .await;

    let seen = &s.user.seen()[0];
    assert_eq!(seen.headers["x-request-id"], "req-123");
    assert_eq!(seen.headers["traceparent"], trace);
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(reply.header("x-request-id"), "req-123");
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_gateway() {
    let s = system().await;

    send(
        Method::GET,
        &s.gateway.url("/api/books"),
        &[
            ("connection", "x-private"),
            ("x-private", "secret"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("authorization", "Bearer token"),
        ],
        "",
    )
    .await;

    let headers = &s.book.seen()[0].headers;
    assert!(!headers.contains_key("x-private"));
    assert!(!headers.contains_key("proxy-authorization"));
    assert_eq!(headers["authorization"], "Bearer token");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_not_forwarded() {
    let book = Upstream::start("book").await;
    let mut config = common::books_only(&[book.addr]).await;
    config.client_max_body_size = 16;
    let gateway = Gateway::start(config).await;

    let reply = send(
        Method::POST,
        &gateway.url("/api/books"),
        &[],
        &"x".repeat(17),
    )
    .await;

    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["status"], 413);
    assert_eq!(book.count(), 0);
}

#[tokio::test]
async fn health_routes_report_the_upstreams() {
    let s = system().await;

    let live = get(&s.gateway.url("/health/live")).await;
    let ready = get(&s.gateway.url("/health/ready")).await;
    let health = get(&s.gateway.url("/health")).await;

    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(health.status, StatusCode::OK);
    let report = health.json();
    assert_eq!(report["status"], "UP");
    assert!(report["timestamp"].as_str().unwrap().ends_with('Z'));
    for name in ["book-service", "user-service", "borrowing-service"] {
        assert_eq!(report["checks"][name]["status"], "UP", "{name}");
    }
}

#[tokio::test]
async fn readiness_fails_when_an_upstream_has_no_server() {
    let book = Upstream::start("book").await;
    let dead = common::dead_addr().await;
    let user = Upstream::start("user").await;
    let config = GatewayConfig::local(vec![book.addr], user.addr, dead);
    let gateway = Gateway::start(config).await;

    let failed = get(&gateway.url("/api/loans")).await;
    let ready = get(&gateway.url("/health/ready")).await;
    let health = get(&gateway.url("/health")).await;

    assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
    assert!(failed.json()["detail"]
        .as_str()
        .unwrap()
        .contains("borrowing-service"));
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let report = health.json();
    assert_eq!(report["status"], "DOWN");
    assert_eq!(report["checks"]["borrowing-service"]["status"], "DOWN");
    assert_eq!(report["checks"]["book-service"]["status"], "UP");
}

#[tokio::test]
async fn metrics_label_routes_by_template() {
    let s = system().await;
    get(&s.gateway.url("/api/books/123")).await;
    get(&s.gateway.url("/api/books/456")).await;
    get(&s.gateway.url("/nowhere/789")).await;

    let metrics = get(&s.gateway.url("/metrics")).await;

    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{") && l.contains("/api/books")
        })
        .expect("a series for /api/books");
    assert!(line.contains(r#"method="GET""#), "{line}");
    assert!(line.contains(r#"route="/api/books""#), "{line}");
    assert!(line.contains(r#"status_code="200""#), "{line}");
    assert!(line.ends_with(" 2"), "{line}");
    assert!(text.contains(r#"route="unmatched""#));
    assert!(!text.contains("/api/books/123") && !text.contains("/nowhere"));
    assert!(text.contains("http_request_duration_seconds_bucket{"));
    assert!(text.contains("gateway_upstream_requests_total{"));
    assert!(text.contains("gateway_upstream_server_available{"));
}

#[tokio::test]
async fn the_gateways_own_routes_take_only_get_and_head() {
    let s = system().await;

    for path in ["/metrics", "/health", "/health/ready", "/health/live"] {
        let posted = send(Method::POST, &s.gateway.url(path), &[], "x").await;
        let read = send(Method::HEAD, &s.gateway.url(path), &[], "").await;

        assert_eq!(posted.status, 405, "POST {path}");
        assert_eq!(posted.header("content-type"), "application/problem+json");
        assert_eq!(posted.json()["status"], 405);
        assert!(read.status.is_success(), "HEAD {path}: {}", read.status);
    }
}
