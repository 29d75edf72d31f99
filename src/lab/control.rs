//! The lab's control API, for scripts and tests (and for driving the lab without a terminal):
//! `GET /lab/state` returns everything the dashboard shows; each `POST` runs one lab command and
//! answers 200 with what happened, or 400 with why it could not be done. Listens on loopback.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Router, body::Bytes};
use serde::Deserialize;

use super::{Lab, LabCommand, LabState};

pub fn router(lab: Lab) -> Router {
    Router::new()
        .route("/lab/state", get(state))
        .route(
            "/lab/nodes",
            post(|State(lab): State<Lab>| run(lab, LabCommand::AddNode)),
        )
        .route("/lab/nodes/{id}/{verb}", post(node_verb))
        .route("/lab/partition", post(partition))
        .route("/lab/cut", post(cut))
        .route(
            "/lab/heal",
            post(|State(lab): State<Lab>| run(lab, LabCommand::Heal)),
        )
        .route(
            "/lab/pause",
            post(|State(lab): State<Lab>| run(lab, LabCommand::Pause)),
        )
        .route(
            "/lab/resume",
            post(|State(lab): State<Lab>| run(lab, LabCommand::Resume)),
        )
        .route("/lab/request", post(request))
        .route("/lab/pre-vote", post(pre_vote))
        .route("/lab/timing", post(timing))
        .with_state(lab)
}

async fn state(State(lab): State<Lab>) -> Json<LabState> {
    Json(lab.state())
}

async fn run(lab: Lab, command: LabCommand) -> Response {
    match lab.run(command).await {
        Ok(text) => (StatusCode::OK, format!("{text}\n")).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    }
}

fn bad(why: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes, example: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("expected a body like {example}: {e}"))
}

async fn node_verb(State(lab): State<Lab>, Path((id, verb)): Path<(usize, String)>) -> Response {
    if id >= lab.state().nodes.len() {
        return bad(format!("no node {id}"));
    }
    let command = match verb.as_str() {
        "kill" => LabCommand::Kill(id),
        "restart" => LabCommand::Restart(id),
        "timeout" => LabCommand::TimeOut(id),
        "transfer" => LabCommand::Transfer(id),
        "isolate" => LabCommand::Isolate(id),
        "promote" => LabCommand::Promote(id),
        "remove" => LabCommand::Remove(id),
        other => {
            return bad(format!(
                "unknown verb {other:?}: kill, restart, timeout, transfer, isolate, promote or remove"
            ));
        }
    };
    run(lab, command).await
}

#[derive(Deserialize)]
struct Groups {
    groups: Vec<Vec<u64>>,
}

async fn partition(State(lab): State<Lab>, body: Bytes) -> Response {
    match parse::<Groups>(&body, r#"{"groups":[[0,1,2],[3,4]]}"#) {
        Ok(g) => run(lab, LabCommand::Partition(g.groups)).await,
        Err(why) => bad(why),
    }
}

#[derive(Deserialize)]
struct Link {
    from: u64,
    to: u64,
}

async fn cut(State(lab): State<Lab>, body: Bytes) -> Response {
    match parse::<Link>(&body, r#"{"from":0,"to":1}"#) {
        Ok(l) => {
            run(
                lab,
                LabCommand::Cut {
                    from: l.from,
                    to: l.to,
                },
            )
            .await
        }
        Err(why) => bad(why),
    }
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    via: Option<usize>,
    key: String,
    value: String,
}

/// Waits for the outcome: 200 once committed, 503 if it failed (the text says why), 400 if the
/// node is not running.
async fn request(State(lab): State<Lab>, body: Bytes) -> Response {
    let r = match parse::<Request>(&body, r#"{"key":"log","value":"x","via":0}"#) {
        Ok(r) => r,
        Err(why) => return bad(why),
    };
    let state = lab.state();
    let Some(via) = r
        .via
        .or_else(|| state.nodes.iter().find(|n| n.up).map(|n| n.id))
    else {
        return bad("no node is up");
    };
    if !state.nodes.get(via).is_some_and(|n| n.up) {
        return bad(format!("node {via} is not running"));
    }
    match lab
        .run(LabCommand::Request {
            via,
            key: r.key,
            value: r.value,
        })
        .await
    {
        Ok(text) => (StatusCode::OK, format!("{text}\n")).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

#[derive(Deserialize)]
struct Toggle {
    enabled: bool,
}

async fn pre_vote(State(lab): State<Lab>, body: Bytes) -> Response {
    match parse::<Toggle>(&body, r#"{"enabled":true}"#) {
        Ok(t) => run(lab, LabCommand::SetPreVote(t.enabled)).await,
        Err(why) => bad(why),
    }
}

#[derive(Deserialize)]
struct TimingBody {
    timing: String,
}

async fn timing(State(lab): State<Lab>, body: Bytes) -> Response {
    match parse::<TimingBody>(&body, r#"{"timing":"slow"}"#) {
        Ok(t) => run(lab, LabCommand::SetTiming(t.timing)).await,
        Err(why) => bad(why),
    }
}
