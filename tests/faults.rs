//! Injected network faults on an in-process cluster: a partition with the leader in the minority,
//! pre-vote with an isolated follower, a cluster-wide pause, and two candidates for one term.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestCluster, assert_one_leader_per_term, post_json, wait_until};
use raftkv::observe::{Fate, Rpc};
use tokio::sync::broadcast::error::RecvError;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_in_the_minority_commits_nothing_and_the_majority_carries_on_then_all_converge() {
    let c = TestCluster::start(5, |cfg| cfg.request_timeout = Duration::from_millis(1500)).await;
    let (leader, term) = c.leader(WAIT).await;
    let minority: Vec<u64> = vec![leader as u64, ((leader + 1) % 5) as u64];
    let majority: Vec<u64> = (0..5u64).filter(|i| !minority.contains(i)).collect();
    assert_eq!(c.append(leader, "k", "before").await, 204);
    c.cluster
        .partition(&[minority.clone(), majority.clone()])
        .unwrap();
    let minority_commit = c.status(leader).await.unwrap().commit_index;

    // The majority elects a new leader in a higher term and acknowledges writes.
    let new = wait_until(WAIT, "the majority elects a leader", || async {
        let ids: Vec<usize> = majority.iter().map(|i| *i as usize).collect();
        c.leader_among(&ids, term).await
    })
    .await;
    assert_eq!(c.append(new, "k", "majority").await, 204);
    // The minority acknowledges nothing and serves no linearizable read.
    for i in &minority {
        let (code, text) = c
            .post(*i as usize, "k", r#"{"type":"APPEND","value":"minority"}"#)
            .await;
        assert_eq!(code, 503, "node {i}: {text}");
        // A follower cut off from its leader never gets its request through, so it knows nothing
        // was appended; the old leader itself refuses before appending (its lease expired).
        assert!(text.starts_with("unavailable:"), "node {i}: {text}");
        assert_eq!(c.get(*i as usize, "k", "").await.0, 503);
    }
    let old = c.status(leader).await.unwrap();
    assert_eq!(
        old.commit_index, minority_commit,
        "the minority committed nothing"
    );
    assert!(
        !old.has_quorum,
        "the isolated old leader knows it has no quorum: {old:?}"
    );

    c.cluster.heal().await;
    c.leader(WAIT).await;
    // Everyone converges on the majority's history; the refused minority writes never appear.
    for i in 0..5 {
        wait_until(WAIT, &format!("node {i} converged"), || async {
            (c.get(i, "k", "?consistency=local").await.1?
                == vec!["before".to_string(), "majority".into()])
            .then_some(())
        })
        .await;
    }
    c.shutdown().await;
}

/// Isolates a follower for three seconds and returns (term before, term after healing).
async fn isolate_a_follower(pre_vote: bool) -> (u64, u64) {
    let c = TestCluster::start(5, |cfg| {
        cfg.timing.pre_vote = pre_vote;
        cfg.timing.heartbeat_ms = 50;
        cfg.timing.election_min_ms = 300;
        cfg.timing.election_max_ms = 600;
    })
    .await;
    let (leader, term) = c.leader(WAIT).await;
    let follower = ((leader + 1) % 5) as u64;
    let others: Vec<u64> = (0..5u64).filter(|i| *i != follower).collect();
    c.cluster.partition(&[vec![follower], others]).unwrap();
    // The fault lasts a fixed time: several election timeouts of the isolated node.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let isolated_term = c.status(follower as usize).await.unwrap().term;
    c.cluster.heal().await;
    let (_, after) = c.leader(WAIT).await;
    c.shutdown().await;
    eprintln!(
        "pre_vote={pre_vote}: term {term}, isolated node reached {isolated_term}, after heal {after}"
    );
    (term, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_vote_keeps_an_isolated_follower_from_raising_the_term_and_without_it_the_term_rises() {
    let (before, after) = isolate_a_follower(true).await;
    assert_eq!(
        after, before,
        "with pre-vote the isolated follower cannot force a new term"
    );
    let (before, after) = isolate_a_follower(false).await;
    assert!(
        after > before,
        "without pre-vote the returning follower forces a higher term"
    );
}

async fn terms_and_commits(c: &TestCluster) -> Vec<Option<(u64, Option<u64>)>> {
    c.cluster
        .statuses()
        .await
        .into_iter()
        .map(|s| s.map(|s| (s.term, s.commit_index)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_cluster_keeps_its_terms_and_indexes_and_resumes_without_loss() {
    let c = TestCluster::start(5, |_| {}).await;
    let (leader, term) = c.leader(WAIT).await;
    assert_eq!(c.append(leader, "k", "a").await, 204);
    // Pause a settled cluster: messages already past the gate when the pause starts still land.
    let committed = c.status(leader).await.unwrap().commit_index;
    for i in 0..5 {
        wait_until(WAIT, "every node learned the commit", || async {
            (c.status(i).await?.commit_index == committed).then_some(())
        })
        .await;
    }
    c.cluster.pause();
    let frozen = terms_and_commits(&c).await;
    // A write sent while paused waits (its messages are held), then commits after resume.
    let write = tokio::spawn({
        let (http, url) = (c.http.clone(), c.url((leader + 1) % 5, "/keys/k"));
        async move {
            http.post(url)
                .json(&serde_json::json!({"type":"APPEND","value":"during"}))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = terms_and_commits(&c).await;
    assert_eq!(
        still, frozen,
        "nothing moves while paused (2 s = several election timeouts)"
    );
    assert!(!write.is_finished());
    c.cluster.resume().await;
    let resp = write.await.unwrap().unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let (_, after) = c.leader(WAIT).await;
    assert_eq!(after, term, "a pause is not a failure: no election");
    assert_eq!(
        c.get(leader, "k", "").await.1,
        Some(vec!["a".to_string(), "during".into()])
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_cut_off_from_their_leader_refuse_writes_knowing_nothing_was_appended() {
    let c = TestCluster::start(5, |cfg| cfg.request_timeout = Duration::from_millis(1500)).await;
    let (leader, _) = c.leader(WAIT).await;
    let cut_off: Vec<u64> = vec![((leader + 1) % 5) as u64, ((leader + 2) % 5) as u64];
    let rest: Vec<u64> = (0..5u64).filter(|i| !cut_off.contains(i)).collect();
    c.cluster.partition(&[cut_off.clone(), rest]).unwrap();
    for i in &cut_off {
        // Its leader is on the other side: the forward never leaves, so the outcome is certain.
        let (code, text) = c
            .post(*i as usize, "k", r#"{"type":"APPEND","value":"lost"}"#)
            .await;
        assert_eq!(code, 503, "node {i}: {text}");
        assert!(
            text.starts_with("unavailable:") && text.contains("is cut"),
            "node {i}: {text}"
        );
    }
    assert_eq!(
        c.append(leader, "k", "kept").await,
        204,
        "the leader keeps a majority"
    );
    c.shutdown().await;
}

/// A leader killed while a write is in flight, after its followers stored the entry: the entry
/// commits under the next leader, so the client must hear "outcome unknown", never
/// "unavailable" (which promises the write did not happen). The register checker found this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_flight_when_its_leader_dies_is_reported_unknown_and_may_commit() {
    let mut c = TestCluster::start(3, |cfg| cfg.request_timeout = Duration::from_secs(2)).await;
    let (leader, _) = c.leader(WAIT).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // Followers receive the leader's appends, but their answers never arrive: nothing commits.
    for f in &followers {
        c.cluster.cut(*f as u64, leader as u64).unwrap();
    }
    let before = c.status(leader).await.unwrap().last_log_index;
    let url = c.url(leader, "/keys/k");
    let http = c.http.clone();
    let write =
        tokio::spawn(async move { post_json(&http, url, r#"{"type":"PUT","value":["v"]}"#).await });
    wait_until(WAIT, "both followers stored the new entry", || async {
        for f in &followers {
            let s = c.status(*f).await?;
            (s.last_log_index > before).then_some(())?;
        }
        Some(())
    })
    .await;
    c.kill(leader).await;
    c.cluster.heal().await;
    let (code, text) = write.await.unwrap();
    assert_eq!(code, 503, "{text}");
    assert!(
        !text.starts_with("unavailable:"),
        "the write may have committed, yet the client was told it did not: {text}"
    );
    let (new, _) = c.leader(WAIT).await;
    assert_eq!(
        c.get(new, "k", "").await,
        (200, Some(vec!["v".to_string()]))
    );
}

/// A write forwarded by a follower whose leader's replies cannot reach it (link leader →
/// follower cut, follower → leader open): the leader commits the write with the other follower,
/// and the reply is lost on its way back (the leader's end closes the connection, as a silent
/// link would time out). The client must not hear "unavailable" for a write that is in the log.
/// The same with the reply lost in the sender's hold, as a learner drops it: golden `lost-reply`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_whose_reply_is_lost_is_reported_unknown_and_is_committed() {
    let c = TestCluster::start(3, |cfg| cfg.request_timeout = Duration::from_secs(2)).await;
    let (leader, _) = c.leader(WAIT).await;
    let follower = (leader + 1) % 3;
    wait_until(WAIT, "the follower knows the leader", || async {
        (c.status(follower).await?.leader_id == Some(leader as u64)).then_some(())
    })
    .await;
    c.cluster.cut(leader as u64, follower as u64).unwrap();
    let (code, text) = c
        .post(follower, "k", r#"{"type":"APPEND","value":"v"}"#)
        .await;
    assert_eq!(code, 503, "{text}");
    assert!(
        text.starts_with("outcome unknown:"),
        "the leader may have committed it, yet the client was told it did not: {text}"
    );
    assert_eq!(
        c.get(leader, "k", "").await,
        (200, Some(vec!["v".to_string()])),
        "the write was committed (by the leader and the other follower)"
    );
    c.cluster.heal().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_candidates_timing_out_together_never_both_lead_in_one_term() {
    // Without pre-vote, both go straight to the same new term and ask for votes at once.
    // Election Safety is read off the wire (`check::election`): one sender of AppendEntries per
    // term. openraft's leader lease makes voters refuse while they still hear the old leader, so
    // the two race head-on only now and then: with openraft's default leader id (leader_id_adv,
    // several leaders per term) this test failed in 1 of 3 runs ("two leaders in term 6: nodes
    // {0, 3}"). The deterministic guard of that choice is the unit test in `raft`.
    let c = TestCluster::start(5, |cfg| cfg.timing.pre_vote = false).await;
    let watch = raftkv::check::election::Watch::start(&c.cluster);
    for _ in 0..8 {
        let (leader, term) = c.leader(WAIT).await;
        let (a, b) = ((leader + 1) % 5, (leader + 2) % 5);
        let (ra, rb) = tokio::join!(c.cluster.time_out(a), c.cluster.time_out(b));
        ra.unwrap();
        rb.unwrap();
        wait_until(WAIT, "a leader in a later term", || async {
            c.leader_among(&[0, 1, 2, 3, 4], term).await
        })
        .await;
    }
    assert_one_leader_per_term(&watch.finish().await.unwrap(), 8);
    c.shutdown().await;
}

/// A candidate that missed an election. `l` and `h` cannot talk (cut both ways); `l` times out and
/// wins term + 1; once every lease has run out (timers stay off: no heartbeat renews a lease, no
/// election starts by itself), `h`, which heard nothing of term + 1, times out into that same term
/// and asks the same voters. They refuse: they voted in term + 1 already, and they hold `l`'s
/// entry of term + 1, which `h` lacks. Once the links heal, `h` follows `l`. With the lease out of
/// the way only Raft's vote and log rules stand between `h` and a second leader of term + 1, and
/// Election Safety is read off the wire (`check::election`). Under openraft's leader_id_adv the
/// rounds never converge: `h`'s vote for itself then ranks above `l`'s in the same term, so `h`
/// refuses the leader's AppendEntries (tried: "every node follows one leader of term + 1" times out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_missed_an_election_cannot_take_its_term_and_follows_the_winner() {
    // Which two of the four nodes that do not lead (in id order) race: `l` the lower id.
    const PAIRS: [(usize, usize); 6] = [(0, 3), (1, 2), (0, 1), (2, 3), (1, 3), (0, 2)];
    let c = TestCluster::start(5, |cfg| cfg.timing.pre_vote = false).await;
    c.leader(WAIT).await;
    c.cluster.set_timers(false);
    let watch = raftkv::check::election::Watch::start(&c.cluster);
    // The rounds run in a task of their own so that, should they get stuck after two leaders were
    // elected, the test still fails on what the wire showed rather than on a wait.
    let rounds = tokio::spawn(async move {
        race_for_the_same_term(&c, &PAIRS).await;
        c
    });
    let outcome = rounds.await;
    let leaders = watch.finish().await.unwrap();
    assert_eq!(leaders.violations(), Vec::<String>::new());
    let c = outcome.expect("every round elected one leader");
    assert_one_leader_per_term(&leaders, PAIRS.len());
    c.shutdown().await;
}

/// The rounds of [`a_candidate_that_missed_an_election_cannot_take_its_term_and_follows_the_winner`].
async fn race_for_the_same_term(c: &TestCluster, pairs: &[(usize, usize)]) {
    let mut events = c.cluster.events();
    for &(i, j) in pairs {
        // A leader would not stand for election: the candidates come from the other four.
        let (term, leader) = wait_until(WAIT, "one term, one leader, no lease holds", || async {
            let mut seen = BTreeSet::new();
            for i in 0..5 {
                let s = c.status(i).await?;
                (!s.has_quorum && !s.heard_from_leader).then_some(())?;
                seen.insert((s.term, s.leader_id?));
            }
            (seen.len() == 1).then(|| seen.pop_first().unwrap())
        })
        .await;
        let others: Vec<usize> = (0..5).filter(|n| *n as u64 != leader).collect();
        let (l, h) = (others[i], others[j]);
        let voters: Vec<usize> = (0..5).filter(|n| *n != l && *n != h).collect();
        c.cluster.cut(l as u64, h as u64).unwrap();
        c.cluster.cut(h as u64, l as u64).unwrap();
        c.cluster.time_out(l).await.unwrap();
        wait_until(
            WAIT,
            "l leads term + 1 and its voters' leases ran out",
            || async {
                for &v in &voters {
                    let s = c.status(v).await?;
                    (s.term == term + 1 && s.leader_id == Some(l as u64) && !s.heard_from_leader)
                        .then_some(())?;
                }
                Some(())
            },
        )
        .await;
        assert_eq!(c.status(h).await.unwrap().term, term, "h heard of term + 1");
        c.cluster.time_out(h).await.unwrap();
        let mut answered = BTreeSet::new();
        tokio::time::timeout(WAIT, async {
            while answered.len() < voters.len() {
                match events.recv().await {
                    Ok(e) if e.from == h as u64 && e.rpc == Rpc::Vote && e.term == term + 1 => {
                        if let Fate::Answered { .. } = e.fate {
                            answered.insert(e.to);
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => panic!("the cluster's event stream closed"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("in {WAIT:?} only voters {answered:?} answered h's vote request")
        });
        c.cluster.heal().await;
        c.cluster.heartbeat().await;
        wait_until(
            WAIT,
            "every node follows one leader of term + 1",
            || async {
                let mut leaders = BTreeSet::new();
                for i in 0..5 {
                    let s = c.status(i).await?;
                    (s.term == term + 1).then_some(())?;
                    leaders.insert(s.leader_id?);
                }
                (leaders.len() == 1).then_some(())
            },
        )
        .await;
    }
}
