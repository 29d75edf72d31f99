//! The HTTP API's handling of bad input: each case gets its status and a plain-text reason,
//! changes nothing, and the node keeps serving. Keys are percent-decoded (`%2F`, Unicode).

mod common;

use std::time::Duration;

use common::{TestCluster, sample};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_the_node_keeps_serving() {
    let c = TestCluster::start(3, |_| {}).await;
    let (leader, _) = c.leader(Duration::from_secs(20)).await;
    let node = (leader + 1) % 3;
    assert_eq!(c.put(node, "k", &["kept"]).await, 204);

    let cases: &[(&str, u16, &str)] = &[
        ("not json", 400, "not valid JSON"),
        (r#"["PUT"]"#, 400, "JSON object"),
        (r#"{"value":["a"]}"#, 400, "missing \"type\""),
        (
            r#"{"type":"DELETE","value":"a"}"#,
            400,
            "\"PUT\" or \"APPEND\"",
        ),
        (
            r#"{"type":"put","value":["a"]}"#,
            400,
            "\"PUT\" or \"APPEND\"",
        ),
        (r#"{"type":"PUT","value":"a"}"#, 400, "list of strings"),
        (r#"{"type":"PUT","value":["a",1]}"#, 400, "list of strings"),
        (r#"{"type":"PUT"}"#, 400, "list of strings"),
        (r#"{"type":"APPEND","value":["a"]}"#, 400, "a string"),
        (r#"{"type":"APPEND"}"#, 400, "a string"),
    ];
    for (body, status, reason) in cases {
        let (code, text) = c.post(node, "k", body).await;
        assert_eq!(code, *status, "{body} -> {text}");
        assert!(
            text.contains(reason),
            "{body} -> {text:?} should mention {reason:?}"
        );
    }

    let url = c.url(node, "/keys/k");
    let form = c
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body(r#"{"type":"APPEND","value":"x"}"#);
    let resp = form.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 415);

    let huge = format!(
        r#"{{"type":"APPEND","value":"{}"}}"#,
        "x".repeat(raftkv::api::MAX_BODY_BYTES + 1)
    );
    let (code, text) = c.post(node, "k", &huge).await;
    assert_eq!(code, 413, "{text}");

    let (code, _) = c.get(node, "k", "?consistency=eventual").await;
    assert_eq!(code, 400);

    // Nothing above changed the value, and the node still serves reads and writes.
    assert_eq!(c.get(node, "k", "").await.1, Some(vec!["kept".to_string()]));
    assert_eq!(c.append(node, "k", "more").await, 204);

    // Percent-encoded keys are decoded: "a/b" and a Unicode key are ordinary keys.
    assert_eq!(c.put(node, "a%2Fb", &["slash"]).await, 204);
    assert_eq!(
        c.get(leader, "a%2Fb", "").await.1,
        Some(vec!["slash".to_string()])
    );
    assert_eq!(
        c.append(node, "%C3%A9t%C3%A9%20%F0%9F%8C%9E", "sun").await,
        204
    );
    let (code, list) = c.get(leader, "été 🌞", "").await;
    assert_eq!((code, list), (200, Some(vec!["sun".to_string()])));
    c.shutdown().await;
}

/// The value of the first sample in `text` whose line starts with `prefix`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_rpcs_and_elections_and_show_raft_state() {
    let c = TestCluster::start(3, |_| {}).await;
    let (leader, term) = c.leader(Duration::from_secs(20)).await;
    let follower = (leader + 1) % 3;
    for n in 0..5 {
        assert_eq!(c.append(follower, "m", &format!("v{n}")).await, 204);
    }
    assert_eq!(c.get(leader, "nothing", "").await.0, 404);
    let scrape = |i: usize| {
        let url = c.url(i, "/metrics");
        let http = c.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let on_leader = scrape(leader).await;
    let on_follower = scrape(follower).await;
    assert_eq!(
        sample(&on_leader, "raftkv_raft_role{role=\"leader\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&on_follower, "raftkv_raft_role{role=\"follower\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&on_leader, "raftkv_raft_term "), Some(term as f64));
    assert_eq!(
        sample(&on_follower, "raftkv_raft_leader "),
        Some(leader as f64)
    );
    assert_eq!(sample(&on_leader, "raftkv_raft_has_quorum "), Some(1.0));
    let post = "raftkv_http_requests_total{route=\"/keys/{key}\",method=\"POST\",status=\"204\"}";
    assert_eq!(sample(&on_follower, post), Some(5.0));
    let miss = "raftkv_http_requests_total{route=\"/keys/{key}\",method=\"GET\",status=\"404\"}";
    assert_eq!(sample(&on_leader, miss), Some(1.0));
    assert!(on_leader.contains("raftkv_http_request_duration_seconds_bucket{le="));
    // The follower forwarded its writes: RPCs it sent to the leader, which received them.
    let forwarded =
        format!("raftkv_raft_rpcs_total{{peer=\"{leader}\",rpc=\"forward\",result=\"sent\"}}");
    assert!(
        sample(&on_follower, &forwarded) >= Some(5.0),
        "{on_follower}"
    );
    let received = format!(
        "raftkv_raft_rpcs_total{{peer=\"{follower}\",rpc=\"forward\",result=\"received\"}}"
    );
    assert!(sample(&on_leader, &received) >= Some(5.0), "{on_leader}");
    assert!(sample(&on_leader, "raftkv_raft_elections_total") >= Some(1.0));
    // Every follower catches up within a heartbeat or two; the lag gauge must say so.
    let lag = format!("raftkv_raft_replication_lag{{peer=\"{follower}\"}}");
    common::wait_until(Duration::from_secs(10), "the lag gauge reaches 0", || {
        let scraped = scrape(leader);
        let lag = lag.clone();
        async move { (sample(&scraped.await, &lag) == Some(0.0)).then_some(()) }
    })
    .await;
    c.shutdown().await;
}
