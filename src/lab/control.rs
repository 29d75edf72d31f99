//! The lab's control API, for scripts and tests (and for driving the lab without a terminal):
//! `GET /lab/state` returns everything the dashboard shows, `GET /lab/messages` the messages
//! between nodes with their fields (`?kind=Vote&node=2` to filter); each `POST` runs one [`LabCommand`]
//! and answers 200 with what happened, or 400 with why it could not be done. Listens on loopback.
//!
//! The routes are the command's JSON form spread over the URL: `POST /lab/{verb}` with the
//! command's other fields as the body, `POST /lab/nodes/{id}/{verb}` for a verb about one node,
//! `POST /lab/nodes` to add one. Both are deserialized as a `LabCommand`, so a new verb needs no
//! code here.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::{Router, body::Bytes};
use serde_json::{Map, Value};

use super::message::{MessageFilter, MessageView};
use super::{Lab, LabCommand, LabState};
use crate::observe::Held;

pub fn router(lab: Lab) -> Router {
    Router::new()
        .route("/lab/state", get(state))
        .route("/lab/messages", get(messages))
        .route(
            "/lab/nodes",
            post(|State(lab): State<Lab>| run(lab, LabCommand::AddNode)),
        )
        .route("/lab/nodes/{id}/{verb}", post(node_verb))
        .route("/lab/messages/{id}/{verb}", post(message_verb))
        .route("/lab/{verb}", post(verb))
        .with_state(lab)
}

async fn state(State(lab): State<Lab>) -> Json<LabState> {
    Json(lab.state())
}

/// `GET /lab/messages[?kind=Vote][&node=2]`: the messages pane's lines, newest first, with every
/// field; `?held=true`: the messages a pause holds, oldest first (each with the id to deliver or
/// drop it by). A kind that does not exist is a 400 naming the kinds.
async fn messages(State(lab): State<Lab>, Query(q): Query<MessagesQuery>) -> Response {
    let state = lab.state();
    let filter = MessageFilter {
        kind: q.kind,
        node: q.node,
    };
    if q.held {
        let node = |h: &&Held| filter.node.is_none_or(|n| n == h.from || n == h.to);
        let kind = |h: &&Held| filter.kind.is_none_or(|k| k == h.rpc);
        let held: Vec<&Held> = state.held.iter().filter(node).filter(kind).collect();
        return Json(held).into_response();
    }
    let all = state.messages;
    let shown: Vec<MessageView> = all.into_iter().filter(|m| filter.matches(m)).collect();
    Json(shown).into_response()
}

/// The query of `GET /lab/messages` (no `serde(flatten)`: it loses the types of query strings).
#[derive(serde::Deserialize)]
struct MessagesQuery {
    #[serde(default)]
    held: bool,
    kind: Option<crate::observe::Rpc>,
    node: Option<u64>,
}

async fn run(lab: Lab, command: LabCommand) -> Response {
    match lab.run(command).await {
        Ok(text) => (StatusCode::OK, format!("{text}\n")).into_response(),
        Err(why) => bad(why),
    }
}

fn bad(why: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response()
}

/// The command named by `verb` with the fields of `body` (empty, `null` or a JSON object).
fn command(verb: &str, body: &Bytes, extra: Option<(&str, Value)>) -> Result<LabCommand, String> {
    let mut fields = match serde_json::from_slice::<Value>(body) {
        _ if body.iter().all(u8::is_ascii_whitespace) => Map::new(),
        Ok(Value::Null) => Map::new(),
        Ok(Value::Object(fields)) => fields,
        Ok(other) => return Err(format!("the body must be a JSON object, not {other}")),
        Err(e) => return Err(format!("the body is not JSON: {e}")),
    };
    fields.insert("verb".into(), Value::String(verb.into()));
    if let Some((name, value)) = extra {
        fields.insert(name.into(), value);
    }
    serde_json::from_value(Value::Object(fields)).map_err(|e| format!("{verb}: {e}"))
}

async fn node_verb(
    State(lab): State<Lab>,
    Path((id, verb)): Path<(usize, String)>,
    body: Bytes,
) -> Response {
    if id >= lab.state().nodes.len() {
        return bad(format!("no node {id}"));
    }
    match command(&verb, &body, Some(("id", id.into()))) {
        Ok(c) if c.node() == Some(id) => run(lab, c).await,
        Ok(_) => bad(format!(
            "{verb:?} is not a verb about one node: kill, restart, timeout, transfer, isolate, \
             promote or remove (POST /lab/{verb} for the others)"
        )),
        Err(why) => bad(why),
    }
}

/// `POST /lab/messages/{id}/deliver` or `…/drop`: a held message, by its id.
async fn message_verb(
    State(lab): State<Lab>,
    Path((id, verb)): Path<(u64, String)>,
    body: Bytes,
) -> Response {
    match command(&verb, &body, Some(("message", id.into()))) {
        Ok(c) if c.message() == Some(id) => run(lab, c).await,
        Ok(_) => bad(format!(
            "{verb:?} is not a verb about a held message: deliver or drop"
        )),
        Err(why) => bad(why),
    }
}

async fn verb(State(lab): State<Lab>, Path(verb): Path<String>, body: Bytes) -> Response {
    let c = match command(&verb, &body, None) {
        Ok(c) if c.node().is_some() => {
            return bad(format!(
                "{verb} is about one node: POST /lab/nodes/{{id}}/{verb}"
            ));
        }
        Ok(c) if c.message().is_some() => {
            return bad(format!(
                "{verb} is about a held message: POST /lab/messages/{{id}}/{verb}"
            ));
        }
        Ok(c) => c,
        Err(why) => return bad(why),
    };
    let LabCommand::Request { via, .. } = &c else {
        return run(lab, c).await;
    };
    // A client request: 400 if it cannot be sent, then 200 once committed or 503 if it failed
    // (the text says why).
    let state = lab.state();
    if let Some(via) = via
        && !state.nodes.get(*via).is_some_and(|n| n.up)
    {
        return bad(format!("node {via} is not running"));
    }
    if !state.nodes.iter().any(|n| n.up) {
        return bad("no node is up");
    }
    match lab.run(c).await {
        Ok(text) => (StatusCode::OK, format!("{text}\n")).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL path that runs `command`, and the body it takes (None: no body). The inverse of what
    /// the routes above accept; the README's control-API list is checked against it.
    fn path_and_body(command: &LabCommand) -> (String, Option<Value>) {
        let Value::Object(mut fields) = serde_json::to_value(command).unwrap_or_default() else {
            unreachable!("a LabCommand serializes as an object")
        };
        let verb = fields
            .remove("verb")
            .and_then(|v| v.as_str().map(String::from));
        let verb = verb.unwrap_or_default();
        if *command == LabCommand::AddNode {
            return ("/lab/nodes".into(), None);
        }
        if let Some(id) = command.node() {
            return (format!("/lab/nodes/{id}/{verb}"), None);
        }
        if let Some(id) = command.message() {
            return (format!("/lab/messages/{id}/{verb}"), None);
        }
        let body = (!fields.is_empty()).then_some(Value::Object(fields));
        (format!("/lab/{verb}"), body)
    }

    /// One of every verb; a new verb fails this until it has an example (and so a README line).
    fn examples() -> Vec<LabCommand> {
        let all = vec![
            LabCommand::Kill { id: 2 },
            LabCommand::Restart { id: 2 },
            LabCommand::TimeOut { id: 2 },
            LabCommand::Transfer { id: 2 },
            LabCommand::Isolate { id: 2 },
            LabCommand::Promote { id: 5 },
            LabCommand::Remove { id: 2 },
            LabCommand::AddNode,
            LabCommand::Partition {
                groups: vec![vec![0, 1, 2], vec![3, 4]],
            },
            LabCommand::Cut { from: 0, to: 1 },
            LabCommand::Heal,
            LabCommand::Pause,
            LabCommand::Resume,
            LabCommand::Request {
                via: Some(0),
                key: "log".into(),
                value: "x".into(),
            },
            LabCommand::SetPreVote { enabled: false },
            LabCommand::Speed { factor: 10 },
            LabCommand::Step,
            LabCommand::Deliver { message: 7 },
            LabCommand::Drop { message: 7 },
        ];
        // serde names every verb in its error for an unknown one: each must have an example.
        let err = command("?", &Bytes::new(), None).unwrap_err();
        let verbs = err
            .split("expected one of")
            .nth(1)
            .expect("serde lists the verbs");
        for verb in verbs.split(',').map(|v| v.trim().trim_matches('`')) {
            let named = |c: &LabCommand| serde_json::to_value(c).unwrap()["verb"] == verb;
            assert!(all.iter().any(named), "no example of verb {verb:?}");
        }
        all
    }

    fn curl(command: &LabCommand) -> String {
        let (path, body) = path_and_body(command);
        match body {
            Some(b) => format!("curl -X POST localhost:8079{path} -d '{b}'"),
            None => format!("curl -X POST localhost:8079{path}"),
        }
    }

    #[test]
    fn every_verb_reaches_the_lab_from_its_path_and_body() {
        for c in examples() {
            let (path, body) = path_and_body(&c);
            let body = Bytes::from(body.map(|b| b.to_string()).unwrap_or_default());
            let parsed = match path
                .trim_start_matches("/lab/")
                .split('/')
                .collect::<Vec<_>>()[..]
            {
                ["nodes"] => Ok(LabCommand::AddNode),
                ["nodes", id, verb] => command(
                    verb,
                    &body,
                    Some(("id", id.parse::<usize>().unwrap().into())),
                ),
                ["messages", id, verb] => command(
                    verb,
                    &body,
                    Some(("message", id.parse::<u64>().unwrap().into())),
                ),
                [verb] => command(verb, &body, None),
                _ => panic!("unexpected path {path}"),
            };
            assert_eq!(parsed, Ok(c), "{path}");
        }
    }

    #[test]
    fn readme_lists_every_verb_of_the_control_api() {
        let readme = include_str!("../../README.md");
        for c in examples() {
            let line = curl(&c);
            assert!(readme.contains(&line), "README.md lacks `{line}`");
        }
    }

    #[test]
    fn bad_bodies_and_verbs_are_refused_with_a_reason() {
        let err = command("partition", &Bytes::from(r#"{"groups":"x"}"#), None).unwrap_err();
        assert!(err.starts_with("partition: invalid type"), "{err}");
        let err = command("explode", &Bytes::new(), None).unwrap_err();
        assert!(err.contains("unknown variant `explode`"), "{err}");
        let err = command("cut", &Bytes::from("[1]"), None).unwrap_err();
        assert!(err.contains("must be a JSON object"), "{err}");
        assert_eq!(
            command("heal", &Bytes::from("null"), None),
            Ok(LabCommand::Heal)
        );
    }
}
