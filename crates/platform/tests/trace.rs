//! One request id across hops: a service's call to its neighbour carries
//! the id of the request it is answering, so both log one `trace.id`.
//! The neighbour here is a MOCK that echoes the id it was sent.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use lectern_platform::auth::TokenKeys;
use lectern_platform::client::ServiceClient;
use lectern_platform::server::Service;
use serde_json::{json, Value};

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A MOCK neighbour answering the `x-request-id` it received.
async fn echo(headers: HeaderMap) -> Json<Value> {
    let id = headers.get("x-request-id").and_then(|v| v.to_str().ok());
    Json(json!({ "seen": id }))
}

#[tokio::test]
async fn a_call_to_a_neighbour_carries_the_request_id() {
    let neighbour = serve(Router::new().route("/echo", get(echo))).await;
    let keys = Arc::new(TokenKeys::from_secret(b"trace-test-secret-0123"));
    let client = ServiceClient::new(
        "neighbour",
        "front",
        &neighbour,
        keys,
        Duration::from_secs(2),
    );
    let api = Router::new().route(
        "/ask",
        get(move || async move {
            let answer: Value = client.get_json("/echo", None).await.unwrap();
            Json(answer)
        }),
    );
    let front = serve(Service::new("front", api).into_router()).await;

    let answer: Value = reqwest::Client::new()
        .get(format!("{front}/ask"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(answer["seen"], "trace-abc-123");
}
