//! Black-box tests of visible webhooks (issue 10 item 7) against the real binary: a local
//! receiver that fails and then succeeds; a delivery parked after `webhook_max_attempts`;
//! `GET /v1/webhooks` with backlog, parked count, last success and failure (never the secret);
//! `POST /v1/webhooks/{name}/redeliver` requeueing it; admin-only routes; failure metrics and a
//! warn line that names no secret.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // Tests of the shell read the wall clock.

mod binary_support;

use axum::extract::State;
use axum::http::StatusCode;
use binary_support::{Api, Steward, fast_config, temp_dir};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use steward_app::config::hash_token;

const SECRET: &str = "hook-secret-9f2c";

/// A receiver that answers 500 to its first `fail` requests and 200 after; counts both.
#[derive(Clone, Default)]
struct Receiver {
    fail: Arc<AtomicU32>,
    seen: Arc<AtomicU32>,
}

async fn receive(State(receiver): State<Receiver>) -> StatusCode {
    receiver.seen.fetch_add(1, Ordering::SeqCst);
    let failing = receiver
        .fail
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

async fn start_receiver(fail: u32) -> (String, Receiver) {
    let receiver = Receiver::default();
    receiver.fail.store(fail, Ordering::SeqCst);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

/// The webhook named `ops` in `GET /v1/webhooks`.
async fn ops(admin: &Api) -> Value {
    let all = admin.ok("/v1/webhooks").await;
    all.as_array().unwrap().iter().find(|w| w["name"] == "ops").cloned().unwrap()
}

async fn wait_ops(admin: &Api, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let hook = ops(admin).await;
        if done(&hook) {
            return hook;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out; last answer: {hook:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deliveries_are_visible_parked_and_redelivered() {
    let (url, receiver) = start_receiver(3).await;
    let dir = temp_dir();
    let tables = format!(
        "[[tokens]]\nname = \"ops-team\"\nrole = \"operator\"\nsha256 = \"{}\"\n\
         [[tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n\
         [[webhooks]]\nname = \"ops\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
         events = [\"service_state_changed\"]\n",
        hash_token("operator-token"),
        hash_token("admin-token"),
    );
    let steward = Steward::start(dir.path(), &fast_config("webhook_max_attempts = 2", "", &tables));
    let operator = steward.api_with("operator-token");
    let admin = steward.api_with("admin-token");

    // Admin only, GET included.
    assert_eq!(operator.get("/v1/webhooks").await.status, 403);
    assert_eq!(operator.post("/v1/webhooks/ops/redeliver", &json!({})).await.status, 403);
    let idle = ops(&admin).await;
    assert_eq!((idle["backlog"].as_u64(), idle["parked"].as_u64()), (Some(0), Some(0)));

    // One notification; the receiver fails both allowed attempts: the delivery is parked.
    let path = "/v1/components/rack-001-node-01/service-state";
    let moved = operator.post(path, &json!({"to": "maintenance"})).await;
    assert_eq!(moved.status, 200, "{moved:?}");
    let parked = wait_ops(&admin, |h| h["parked"] == 1).await;
    assert_eq!(parked["backlog"], 0, "{parked:#}");
    assert!(parked["last_error"].as_str().unwrap().contains("500"), "{parked:#}");
    assert!(parked["last_failure_at"].is_string(), "{parked:#}");
    assert!(parked["last_success_at"].is_null(), "{parked:#}");
    assert_eq!(receiver.seen.load(Ordering::SeqCst), 2, "no attempt after parking");
    let listing = admin.get("/v1/webhooks").await.body.to_string();
    assert!(!listing.contains(SECRET) && !listing.contains(&url), "{listing}");

    // Requeue: one more failure, then the receiver accepts it.
    let missing = admin.post("/v1/webhooks/nope/redeliver", &json!({})).await;
    assert_eq!((missing.status, missing.content_type.as_str()), (404, "application/problem+json"));
    let requeued = admin.post("/v1/webhooks/ops/redeliver", &json!({})).await;
    assert_eq!((requeued.status, requeued.body["requeued"].as_u64()), (200, Some(1)));
    let delivered = wait_ops(&admin, |h| h["last_success_at"].is_string()).await;
    assert_eq!((delivered["backlog"].as_u64(), delivered["parked"].as_u64()), (Some(0), Some(0)));
    assert_eq!(receiver.seen.load(Ordering::SeqCst), 4);
    let again = admin.post("/v1/webhooks/ops/redeliver", &json!({})).await;
    assert_eq!(again.body["requeued"], 0, "nothing parked any more");

    // The gauges follow within a refresh interval; the failure counter is exact.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = admin.get("/metrics").await.body.as_str().unwrap_or_default().to_string();
        let settled = text.contains("steward_webhook_parked{webhook=\"ops\"} 0")
            && text.contains("steward_webhook_backlog{webhook=\"ops\"} 0");
        if settled || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metrics.contains("steward_webhook_failures_total{webhook=\"ops\"} 3"), "{metrics}");
    assert!(metrics.contains("steward_webhook_parked{webhook=\"ops\"} 0"), "{metrics}");
    assert!(metrics.contains("steward_webhook_backlog{webhook=\"ops\"} 0"), "{metrics}");
    let log = steward.log();
    assert!(log.contains("WARN") && log.contains("webhook delivery parked"), "{log}");
    assert!(!log.contains(SECRET), "the secret is never logged");
    assert!(steward.stop().success());
}
