//! The lab driven through its control API, as a script would: kill the leader, partition with the
//! leader in the minority and heal, pause and resume. Real nodes on ephemeral loopback ports.

mod common;

use std::time::Duration;

use common::{free_port_block, timing, wait_until};
use raftkv::cluster::{Cluster, loopback_configs};
use raftkv::lab::LabState;
use raftkv::raft::status::Role;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(20);

struct LabClient {
    base: String,
    http: reqwest::Client,
    _dir: TempDir,
}

impl LabClient {
    async fn start() -> LabClient {
        Self::start_with(false, timing()).await
    }

    /// With `paused`, the cluster starts before any election: its clock frozen, its messages held.
    async fn start_with(paused: bool, timing: raftkv::config::Timing) -> LabClient {
        let dir = TempDir::new().unwrap();
        // Like the real lab, contiguous ports with room for a sixth node: an added node listens
        // on node 0's ports + its id.
        let ports = free_port_block(12);
        let mut configs = loopback_configs(&ports[..5], &ports[6..11], dir.path(), timing);
        configs
            .iter_mut()
            .for_each(|c| c.request_timeout = Duration::from_millis(1500));
        let cluster = if paused {
            Cluster::start_paused(configs).await.unwrap()
        } else {
            Cluster::start(configs).await.unwrap()
        };
        let (lab, _engine) = raftkv::lab::spawn(cluster).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, raftkv::lab::control::router(lab)).await });
        LabClient {
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn state(&self) -> LabState {
        self.get("/lab/state").await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let url = format!("{}{path}", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `POST /lab/messages/{id}/{verb}` (deliver, drop).
    async fn message(&self, id: u64, verb: &str) -> (u16, String) {
        let path = format!("/lab/messages/{id}/{verb}");
        self.post(&path, serde_json::json!(null)).await
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> (u16, String) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Waits for a leader with a quorum whose term is above `above`; returns (id, term).
    async fn leader_above(&self, above: u64) -> (usize, u64) {
        wait_until(
            WAIT,
            &format!("a leader with a quorum in a term above {above}"),
            || async {
                let s = self.state().await;
                s.leader()
                    .filter(|l| l.term > above)
                    .map(|l| (l.id as usize, l.term))
            },
        )
        .await
    }

    async fn append(&self, via: usize, value: &str) -> u16 {
        self.post(
            "/lab/request",
            serde_json::json!({"via": via, "key": "log", "value": value}),
        )
        .await
        .0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_through_the_control_api_elects_a_new_leader_in_a_higher_term() {
    let lab = LabClient::start().await;
    let (leader, term) = lab.leader_above(0).await;
    assert_eq!(lab.append(leader, "one").await, 200);
    let (code, text) = lab
        .post(
            &format!("/lab/nodes/{leader}/kill"),
            serde_json::json!(null),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    let (new, new_term) = lab.leader_above(term).await;
    assert_ne!(new, leader);
    assert!(new_term > term);
    assert!(!lab.state().await.nodes[leader].up);
    let (code, text) = lab
        .post(
            &format!("/lab/nodes/{leader}/kill"),
            serde_json::json!(null),
        )
        .await;
    assert_eq!(
        (code, text.trim()),
        (
            400,
            &*format!("n{leader} is already down (restart it first)")
        )
    );
    assert_eq!(lab.append(new, "two").await, 200);
    assert_eq!(
        lab.post(
            &format!("/lab/nodes/{leader}/restart"),
            serde_json::json!(null)
        )
        .await
        .0,
        200
    );
    wait_until(WAIT, "the restarted node applied both writes", || async {
        let s = lab.state().await;
        let st = s.nodes[leader].status.as_ref()?;
        (st.last_applied >= s.leader()?.commit_index).then_some(())
    })
    .await;
    let timeline: Vec<String> = lab
        .state()
        .await
        .timeline
        .iter()
        .map(|e| e.text.clone())
        .collect();
    assert!(
        timeline.iter().any(|t| t == &format!("killed n{leader}")),
        "{timeline:?}"
    );
    assert!(
        timeline
            .iter()
            .any(|t| t.starts_with(&format!("n{new} is leader for term"))),
        "{timeline:?}"
    );
    // Bad input is refused with a reason.
    assert_eq!(
        lab.post("/lab/nodes/9/kill", serde_json::json!(null))
            .await
            .0,
        400
    );
    assert_eq!(
        lab.post("/lab/partition", serde_json::json!({"groups": "x"}))
            .await
            .0,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_leader_commits_nothing_and_after_heal_all_converge_without_losing_a_write() {
    let lab = LabClient::start().await;
    let (leader, term) = lab.leader_above(0).await;
    assert_eq!(lab.append(leader, "before").await, 200);
    // Put the leader on the small side of the assignment's {0,1,2} | {3,4} split.
    let small: Vec<u64> = if leader >= 3 {
        vec![3, 4]
    } else {
        vec![leader as u64, (leader as u64 + 1) % 3]
    };
    let big: Vec<u64> = (0..5).filter(|i| !small.contains(i)).collect();
    let (code, text) = lab
        .post(
            "/lab/partition",
            serde_json::json!({"groups": [small, big]}),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    let named = |g: &[u64]| {
        g.iter()
            .map(|n| format!("n{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let said = format!("partitioned {} | {}", named(&small), named(&big));
    assert!(
        text.contains(&said),
        "the lab says {said:?} as people read it: {text}"
    );
    let (new, _) = lab.leader_above(term).await;
    assert!(big.contains(&(new as u64)));
    assert_eq!(lab.append(new, "majority").await, 200);
    let (code, text) = lab
        .post(
            "/lab/request",
            serde_json::json!({"via": leader, "key": "log", "value": "minority"}),
        )
        .await;
    assert_eq!(code, 503, "the minority must not acknowledge: {text}");
    let state = lab.state().await;
    assert!(state.nodes[leader].group.is_some());
    assert_eq!(
        state.links.iter().filter(|l| l.cut).count(),
        2 * small.len() * big.len()
    );

    assert_eq!(lab.post("/lab/heal", serde_json::json!(null)).await.0, 200);
    wait_until(WAIT, "all five converge on the majority's log", || async {
        let s = lab.state().await;
        let commit = s.leader()?.commit_index;
        s.nodes
            .iter()
            .all(|n| {
                n.status
                    .as_ref()
                    .is_some_and(|st| st.last_applied == commit && st.role != Role::Candidate)
            })
            .then_some(())
    })
    .await;
    let kv = lab.state().await.kv;
    let log = &kv.iter().find(|(k, _)| k == "log").unwrap().1;
    assert_eq!(
        log,
        &vec!["before".to_string(), "majority".into()],
        "acknowledged writes kept, refused one absent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_terms_and_indexes_and_resume_continues() {
    let lab = LabClient::start().await;
    let (leader, term) = lab.leader_above(0).await;
    assert_eq!(lab.append(leader, "a").await, 200);
    // Only a state that already records the commit was taken after the write.
    wait_until(WAIT, "every node applied the write", || async {
        let s = lab.state().await;
        let recorded = s
            .timeline
            .iter()
            .any(|e| e.text.contains("APPEND log a: committed"));
        let last = s.leader()?.last_log_index;
        (recorded
            && s.nodes
                .iter()
                .all(|n| n.status.as_ref().is_some_and(|st| st.last_applied == last)))
        .then_some(())
    })
    .await;
    assert_eq!(lab.post("/lab/pause", serde_json::json!(null)).await.0, 200);
    let frozen = |s: &LabState| {
        s.nodes
            .iter()
            .map(|n| n.status.as_ref().map(|st| (st.term, st.commit_index)))
            .collect::<Vec<_>>()
    };
    let before = frozen(&lab.state().await);
    assert!(lab.state().await.paused);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        frozen(&lab.state().await),
        before,
        "nothing moves during 2 s of pause"
    );
    assert_eq!(
        lab.post("/lab/resume", serde_json::json!(null)).await.0,
        200
    );
    assert_eq!(lab.append(leader, "b").await, 200);
    let (_, now) = lab.leader_above(0).await;
    assert_eq!(now, term, "resuming is not a failure: same term");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_hands_leadership_to_the_chosen_node_and_timeout_starts_an_election() {
    let lab = LabClient::start().await;
    let (leader, term) = lab.leader_above(0).await;
    let target = (leader + 2) % 5;
    let (code, text) = lab
        .post(
            &format!("/lab/nodes/{target}/transfer"),
            serde_json::json!(null),
        )
        .await;
    assert_eq!(code, 200, "{text}");
    let (now, new_term) = lab.leader_above(term).await;
    assert_eq!(now, target, "leadership went to the chosen node");
    // A follower that times out starts an election; with pre-vote on and a live leader it cannot
    // win votes, so the leader and term stay.
    let follower = (target + 1) % 5;
    assert_eq!(
        lab.post(
            &format!("/lab/nodes/{follower}/timeout"),
            serde_json::json!(null)
        )
        .await
        .0,
        200
    );
    assert_eq!(lab.append(target, "still-leading").await, 200);
    let state = lab.state().await;
    assert_eq!(
        state.leader().map(|l| (l.id as usize, l.term)),
        Some((target, new_term))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sixth_node_added_live_catches_up_votes_and_a_node_is_removed() {
    let lab = LabClient::start().await;
    let (leader, _) = lab.leader_above(0).await;
    assert_eq!(lab.append(leader, "before").await, 200);
    let (code, text) = lab.post("/lab/nodes", serde_json::json!(null)).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("added n5"), "{text}");
    let state = wait_until(WAIT, "n5 is a learner that applied the write", || async {
        let s = lab.state().await;
        let n5 = s.nodes.get(5)?.status.clone()?;
        (n5.role == Role::Learner && n5.keys == 1).then_some(s)
    })
    .await;
    assert_eq!(state.nodes.len(), 6);
    let (code, text) = lab
        .post("/lab/nodes/5/promote", serde_json::json!(null))
        .await;
    assert_eq!(code, 200, "{text}");
    voters_are(&lab, 6).await;
    let (code, text) = lab
        .post("/lab/nodes/2/remove", serde_json::json!(null))
        .await;
    assert_eq!(code, 200, "{text}");
    let state = wait_until(WAIT, "the lab shows n2 removed", || async {
        let s = lab.state().await;
        s.nodes[2].removed.then_some(s)
    })
    .await;
    assert!(!state.nodes[2].up);
    voters_are(&lab, 5).await;
    let (code, text) = lab
        .post("/lab/nodes/2/restart", serde_json::json!(null))
        .await;
    assert_eq!(code, 400, "a removed node never comes back: {text}");
    let (code, text) = lab.post("/lab/nodes/2/kill", serde_json::json!(null)).await;
    assert_eq!(code, 400, "a removed node cannot be killed: {text}");
    assert!(text.contains("removed from the cluster"), "{text}");
    let (leader, _) = lab.leader_above(0).await;
    assert_eq!(lab.append(leader, "after").await, 200);
}

/// Waits until node 0 counts `n` voters in its membership.
async fn voters_are(lab: &LabClient, n: usize) {
    wait_until(WAIT, &format!("n0 sees {n} voters"), || async {
        let s = lab.state().await;
        let st = s.nodes[0].status.as_ref()?;
        (st.members.iter().filter(|m| m.voter).count() == n).then_some(())
    })
    .await
}

/// Lab tests run in parallel, each on a block of 12 consecutive ports: blocks must be disjoint
/// (overlapping ones once made a lab test fail with "address already in use" in CI).
#[test]
fn port_blocks_taken_together_are_disjoint() {
    let blocks: Vec<Vec<u16>> = (0..8).map(|_| free_port_block(12)).collect();
    for (i, a) in blocks.iter().enumerate() {
        assert!(
            a.windows(2).all(|w| w[1] == w[0] + 1),
            "not consecutive: {a:?}"
        );
        for b in &blocks[i + 1..] {
            assert!(a.iter().all(|p| !b.contains(p)), "{a:?} overlaps {b:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_of_an_election_and_a_write_are_listed_with_their_raft_fields() {
    let lab = LabClient::start().await;
    let (old, term) = lab.leader_above(0).await;
    // An election the lab sees from its start: kill the leader.
    assert_eq!(
        lab.post(&format!("/lab/nodes/{old}/kill"), serde_json::json!(null))
            .await
            .0,
        200
    );
    let (leader, new_term) = lab.leader_above(term).await;
    assert_eq!(lab.append(leader, "fields").await, 200);
    let get = |query: &'static str| {
        let url = format!("{}/lab/messages{query}", lab.base);
        let http = lab.http.clone();
        async move {
            let resp = http.get(url).send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    // The votes that made the new leader: its RequestVotes in the new term, each with the
    // candidate's last log entry, and granted replies from a majority's worth of voters.
    let (code, body) = get("?kind=Vote").await;
    assert_eq!(code, 200, "{body}");
    let votes: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let granted: Vec<&serde_json::Value> = votes
        .iter()
        .filter(|m| m["from"] == leader as u64 && m["term"] == new_term)
        .filter(|m| m["reply"]["granted"] == true)
        .collect();
    assert!(granted.len() >= 2, "{body}");
    for m in &granted {
        assert_eq!(m["kind"], "Vote");
        assert_eq!(m["fields"]["kind"], "vote", "{m}");
        assert!(m["fields"]["last_log"]["index"].is_u64(), "{m}");
        assert_eq!(m["reply"]["kind"], "vote", "{m}");
    }
    // The write: an AppendEntries from the leader carrying the entry, answered with success.
    let state = lab.state().await;
    let last = state.nodes[leader].status.as_ref().unwrap().last_log_index;
    let (_, body) = get("?kind=Append").await;
    let appends: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(
        appends.iter().any(|m| m["from"] == leader as u64
            && m["fields"]["last"]["index"].as_u64() <= last
            && m["fields"]["last"]["term"] == new_term
            && m["reply"]["outcome"] == "success"),
        "{body}"
    );
    // Filters: by node (sent or received), and a kind that does not exist is refused.
    let (_, body) = get("?node=0").await;
    let by_node: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(!by_node.is_empty());
    assert!(by_node.iter().all(|m| m["from"] == 0 || m["to"] == 0));
    let (code, body) = get("?kind=Gossip").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown variant"), "{body}");
}

/// The held messages, oldest first, as `GET /lab/messages?held=true` returns them.
async fn held(lab: &LabClient) -> Vec<raftkv::observe::Held> {
    lab.get("/lab/messages?held=true").await
}

async fn role_of(lab: &LabClient, id: usize) -> Role {
    lab.state().await.nodes[id].status.as_ref().unwrap().role
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_election_walked_message_by_message_through_the_control_api() {
    use raftkv::observe::{Leg, ReplyFields, Rpc};
    let timing = raftkv::config::Timing {
        pre_vote: false,
        ..timing()
    };
    let lab = LabClient::start_with(true, timing).await;
    // Every founding server campaigned on start (openraft); once all five have, lose their
    // requests so that n2's election is the only one.
    wait_until(
        WAIT,
        "five candidates in term 1, 20 requests held",
        || async { (held(&lab).await.len() == 20).then_some(()) },
    )
    .await;
    for h in held(&lab).await {
        let (code, text) = lab.message(h.id, "drop").await;
        assert_eq!(code, 200, "{text}");
    }
    let (code, text) = lab
        .post("/lab/nodes/2/timeout", serde_json::json!(null))
        .await;
    assert_eq!(code, 200, "{text}");
    let requests = held(&lab).await;
    assert_eq!(requests.len(), 4, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|h| h.from == 2 && h.rpc == Rpc::Vote && h.term == 2)
    );
    // Bad input changes nothing: an unknown id, a verb that is not about a message.
    let (code, text) = lab.message(999, "deliver").await;
    assert!(
        code == 400 && text.contains("no held message 999"),
        "{code} {text}"
    );
    let (code, _) = lab.message(3, "kill").await;
    assert_eq!(code, 400);
    let (code, text) = lab
        .post("/lab/speed", serde_json::json!({"factor": 99}))
        .await;
    assert!(
        code == 400 && text.contains("out of range"),
        "{code} {text}"
    );
    assert_eq!(held(&lab).await.len(), 4);
    // Each request delivered alone: its voter grants, and the reply is held with its fields.
    let mut grants = Vec::new();
    for request in requests {
        let (code, text) = lab.message(request.id, "deliver").await;
        assert_eq!(code, 200, "{text}");
        let reply = held(&lab)
            .await
            .into_iter()
            .find(|h| h.leg == Leg::Reply && h.from == request.to)
            .expect("the reply is held in turn");
        match &reply.reply {
            Some(ReplyFields::Vote {
                term: 2,
                granted: true,
                ..
            }) => grants.push(reply.id),
            other => panic!("n{} did not grant: {other:?}", request.to),
        }
        assert_eq!(
            role_of(&lab, 2).await,
            Role::Candidate,
            "no reply delivered yet"
        );
    }
    // n2 holds its own vote: it leads exactly when the second grant, its third vote, arrives.
    for (delivered, id) in grants.iter().enumerate() {
        let (code, text) = lab.message(*id, "deliver").await;
        assert_eq!(code, 200, "{text}");
        let expected = if delivered + 1 >= 2 {
            Role::Leader
        } else {
            Role::Candidate
        };
        assert_eq!(
            role_of(&lab, 2).await,
            expected,
            "after {} grants",
            delivered + 1
        );
    }
    // A leader has no election timer: timing it out is refused with the reason.
    let (code, text) = lab
        .post("/lab/nodes/2/timeout", serde_json::json!(null))
        .await;
    assert!(
        code == 400 && text.contains("is the leader"),
        "{code} {text}"
    );
    // Stepping delivers the oldest held message; resume delivers the rest and time runs again.
    let (code, text) = lab.post("/lab/step", serde_json::json!(null)).await;
    assert!(
        code == 200 && text.starts_with("delivered #"),
        "{code} {text}"
    );
    assert_eq!(
        lab.post("/lab/resume", serde_json::json!(null)).await.0,
        200
    );
    let (code, text) = lab.post("/lab/step", serde_json::json!(null)).await;
    assert!(
        code == 400 && text.contains("only while paused"),
        "{code} {text}"
    );
    assert_eq!(lab.append(2, "after").await, 200);
    let (leader, term) = lab.leader_above(0).await;
    assert_eq!((leader, term), (2, 2), "resuming keeps the stepped leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_cluster_keeps_its_leader_and_commits_and_speeds_up_again_without_a_restart() {
    let lab = LabClient::start().await;
    let (leader, term) = lab.leader_above(0).await;
    let (code, text) = lab
        .post("/lab/speed", serde_json::json!({"factor": 20}))
        .await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(lab.state().await.slowdown, 20);
    // 20× slower, heartbeats come every second of real time and leases last 8 s: no follower
    // may mistake that for a dead leader, and a write still commits (just slower).
    assert_eq!(lab.append(leader, "slow").await, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (now, now_term) = lab.leader_above(0).await;
    assert_eq!((now, now_term), (leader, term), "no election while slow");
    let (code, _) = lab
        .post("/lab/speed", serde_json::json!({"factor": 1}))
        .await;
    assert_eq!(code, 200);
    assert_eq!(lab.append(leader, "fast").await, 200);
    let (now, now_term) = lab.leader_above(0).await;
    assert_eq!((now, now_term), (leader, term), "nothing restarted");
    // Nothing was lost when the speed changed: both writes are there.
    wait_until(WAIT, "the leader applied both writes", || async {
        let s = lab.state().await;
        let log = s.kv.iter().find(|(k, _)| k == "log")?;
        (log.1 == ["slow", "fast"]).then_some(())
    })
    .await;
}
