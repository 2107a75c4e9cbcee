//! Every error answer of a [`Service`] is a problem document, also the
//! rejections axum makes itself.

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::Router;
use lectern_platform::server::Service;
use serde::Deserialize;

#[derive(Deserialize)]
struct Page {
    #[allow(dead_code)]
    limit: u32,
}

async fn start() -> String {
    let api = Router::new()
        .route(
            "/things/{id}",
            get(|Path(id): Path<String>| async move { id }),
        )
        .route("/pages", get(|Query(_): Query<Page>| async { "ok" }));
    let app = Service::new("test", api).into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn problem(url: &str) -> (u16, serde_json::Value) {
    let answer = reqwest::get(url).await.unwrap();
    let status = answer.status().as_u16();
    let kind = answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(kind, "application/problem+json", "{url}");
    (status, answer.json().await.unwrap())
}

#[tokio::test]
async fn a_path_segment_that_is_not_utf8_is_a_problem_document() {
    let url = start().await;

    let (status, body) = problem(&format!("{url}/things/%FF")).await;

    assert_eq!(status, 400);
    assert_eq!(body["status"], 400);
    assert_eq!(body["type"], "https://lectern.dev/problems/bad-request");
    assert!(body["detail"].as_str().unwrap().contains("UTF-8"), "{body}");
}

#[tokio::test]
async fn a_query_that_does_not_parse_is_a_problem_document() {
    let url = start().await;

    let (status, body) = problem(&format!("{url}/pages?limit=-3")).await;

    assert_eq!(status, 400);
    assert_eq!(body["title"], "Bad Request");
}

#[tokio::test]
async fn good_answers_are_left_alone() {
    let url = start().await;

    let answer = reqwest::get(format!("{url}/things/abc")).await.unwrap();

    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.text().await.unwrap(), "abc");
}
