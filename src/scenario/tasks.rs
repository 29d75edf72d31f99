//! Tasks 2 and 3 of the report on five `raftkv node` processes: the key/value service's verbs on
//! the leader, then the evaluation's kills and restarts (SIGKILL, data kept), each step with the
//! statuses before and after and, where something changes, a timeline of the change.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::{ALL, Client, Evidence, Timeline};
use crate::harness::{Nodes, Processes};

pub(super) async fn task2(c: &Client, ev: &mut Evidence) -> Result<()> {
    let leader = c.leader(&ALL, 0).await?;
    c.watch_until_settled(&ALL, &mut Timeline::new(5)).await?;
    ev.step("Q1. Which server is the leader?");
    ev.block("Statuses after start:", &c.statuses(&ALL).await);
    for (q, what, body) in [
        (
            "Q2. PUT a on the leader",
            "POST",
            Some(json!({"type": "PUT", "value": ["cat", "dog"]})),
        ),
        (
            "Q3. APPEND a on the leader",
            "POST",
            Some(json!({"type": "APPEND", "value": "mouse"})),
        ),
        ("Q4. GET a on the leader", "GET", None),
    ] {
        ev.step(q);
        ev.block(
            "Request and answer:",
            &c.call(leader, what, "/keys/a", body).await,
        );
        c.watch_until_settled(&ALL, &mut Timeline::new(5)).await?;
        ev.block("Statuses afterwards:", &c.statuses(&ALL).await);
    }
    Ok(())
}

pub(super) async fn task3(c: &Client, procs: &mut Processes, ev: &mut Evidence) -> Result<()> {
    let leader = c.leader(&ALL, 0).await?;
    c.watch_until_settled(&ALL, &mut Timeline::new(5)).await?;
    let term = c.status(leader).await.map_or(0, |s| s.term);
    ev.step("Q1. Shut down the leader");
    ev.block("Statuses before:", &c.statuses(&ALL).await);
    let rest: Vec<usize> = ALL.iter().copied().filter(|i| *i != leader).collect();
    let mut timeline = Timeline::new(5);
    procs.kill(leader).await;
    ev.note(&format!("Killed node {leader} (the leader) with SIGKILL."));
    ev.block(
        "Statuses of the others right after the kill:",
        &c.statuses(&rest).await,
    );
    c.watch_until_settled(&rest, &mut timeline).await?;
    let new = c.leader(&rest, term).await?;
    ev.block(
        "Timeline from the kill (each line: a node's role, term, vote or leader changed):",
        &timeline.text,
    );
    ev.block(
        &format!(
            "Statuses once they follow the new leader ({:.1} s after the kill):",
            timeline.seconds()
        ),
        &c.statuses(&rest).await,
    );

    ev.step("Q2. PUT a, then restart the old leader");
    ev.block(
        "Request and answer:",
        &c.call(
            new,
            "POST",
            "/keys/a",
            Some(json!({"type": "PUT", "value": ["after", "failover"]})),
        )
        .await,
    );
    c.watch_until_settled(&rest, &mut Timeline::new(5)).await?;
    ev.block(
        "Statuses after the PUT, before the restart:",
        &c.statuses(&rest).await,
    );
    let mut timeline = Timeline::new(5);
    procs.restart(leader).await.map_err(anyhow::Error::msg)?;
    c.watch_until_settled(&ALL, &mut timeline).await?;
    ev.block(
        &format!("Timeline from the restart of node {leader}:"),
        &timeline.text,
    );
    ev.block(
        "Statuses after the old leader restarted and caught up:",
        &c.statuses(&ALL).await,
    );
    ev.block(
        "GET a on the previous leader:",
        &c.call(leader, "GET", "/keys/a", None).await,
    );

    ev.step("Q4. Shut down a follower, then the leader");
    let leader = c.leader(&ALL, 0).await?;
    let term = c.status(leader).await.map_or(0, |s| s.term);
    let follower = (leader + 1) % 5;
    let four: Vec<usize> = ALL.iter().copied().filter(|i| *i != follower).collect();
    procs.kill(follower).await;
    ev.note(&format!(
        "Killed node {follower} (a follower) with SIGKILL."
    ));
    // Longer than an election timeout: were anything to happen, it would have.
    let mut timeline = Timeline::new(5);
    c.watch_for(&four, &mut timeline, Duration::from_secs(2))
        .await;
    ev.block(
        "Timeline of the other four over the next 2 s:",
        &timeline.text,
    );
    ev.block(
        "Statuses 2 s after the follower was killed:",
        &c.statuses(&four).await,
    );
    let rest: Vec<usize> = four.iter().copied().filter(|i| *i != leader).collect();
    let mut timeline = Timeline::new(5);
    procs.kill(leader).await;
    ev.note(&format!(
        "Then killed node {leader} (the leader) with SIGKILL."
    ));
    c.watch_until_settled(&rest, &mut timeline).await?;
    c.leader(&rest, term).await?;
    ev.block("Timeline from the leader's kill:", &timeline.text);
    ev.block(
        &format!(
            "Statuses of the three remaining nodes ({:.1} s after the kill):",
            timeline.seconds()
        ),
        &c.statuses(&rest).await,
    );

    ev.step("Q5. Get, Put, Append in this state");
    let other = rest[0];
    for (what, path, body) in [
        ("GET", "/keys/a", None),
        ("GET", "/keys/a?consistency=local", None),
        (
            "POST",
            "/keys/a",
            Some(json!({"type": "PUT", "value": ["x"]})),
        ),
        (
            "POST",
            "/keys/a",
            Some(json!({"type": "APPEND", "value": "y"})),
        ),
    ] {
        ev.block("", &c.call(other, what, path, body).await);
    }

    ev.step("Q6. Restart the two servers");
    let mut timeline = Timeline::new(5);
    procs.restart(follower).await.map_err(anyhow::Error::msg)?;
    procs.restart(leader).await.map_err(anyhow::Error::msg)?;
    c.watch_until_settled(&ALL, &mut timeline).await?;
    ev.block(
        &format!("Timeline from the restarts of nodes {follower} and {leader}:"),
        &timeline.text,
    );
    ev.block("Statuses after both restarted:", &c.statuses(&ALL).await);
    ev.block("GET a:", &c.call(other, "GET", "/keys/a", None).await);
    Ok(())
}
