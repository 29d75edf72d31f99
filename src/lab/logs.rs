//! What the logs did between two refreshes, in the paper's words: entries a leader committed and
//! the majority that stores them (§5.3), and entries a follower deleted because they conflicted
//! with the leader's (§5.3, AppendEntries receiver step 3). Pure functions of two statuses and
//! what the messages showed of each follower's match.

use std::collections::BTreeMap;

use crate::raft::status::{Role, Status};

/// The highest index each follower acknowledged to each leader: (leader, follower) → index.
pub type Matched = BTreeMap<(u64, u64), u64>;

/// "n1 committed entries 7–9 (term 3): stored on n0 n1 n3, a majority of 5", when leader `now`'s
/// commit index moved. Names the nodes only when the messages seen show a majority storing them
/// (the lab may have missed some); otherwise says just what was committed.
pub fn committed(before: &Status, now: &Status, matched: &Matched) -> Option<String> {
    if now.role != Role::Leader || now.commit_index <= before.commit_index {
        return None;
    }
    let to = now.commit_index?;
    let from = before.commit_index.map_or(0, |c| c + 1);
    let range = if from >= to {
        format!("entry {to}")
    } else {
        format!("entries {from}–{to}")
    };
    let voters: Vec<u64> = now
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.id)
        .collect();
    let stored: Vec<u64> = voters
        .iter()
        .copied()
        .filter(|v| *v == now.id || matched.get(&(now.id, *v)).is_some_and(|m| *m >= to))
        .collect();
    let mut text = format!("n{} committed {range} (term {})", now.id, now.term);
    if stored.len() * 2 > voters.len() {
        let names: Vec<String> = stored.iter().map(|v| format!("n{v}")).collect();
        text += &format!(
            ": stored on {}, a majority of {}",
            names.join(" "),
            voters.len()
        );
    }
    let older = now
        .recent_log
        .iter()
        .any(|(i, t)| (from..=to).contains(i) && *t < now.term);
    if older {
        // Figure 8: counting replicas never commits an entry of an earlier term; it commits
        // with the first entry of the leader's own term that a majority stores.
        text +=
            "; entries of earlier terms commit only along with one of the leader's term (§5.4.2)";
    }
    Some(text)
}

/// "n3 dropped entries 9–10 of term 2 (replaced by term 4)", when a node's log tail shows other
/// terms at indexes it held before, or ends earlier than before.
pub fn dropped(before: &Status, now: &Status) -> Option<String> {
    let old: BTreeMap<u64, u64> = before.recent_log.iter().copied().collect();
    let new: BTreeMap<u64, u64> = now.recent_log.iter().copied().collect();
    let replaced: Vec<(u64, u64, u64)> = old
        .iter()
        .filter_map(|(i, t)| new.get(i).filter(|n| *n != t).map(|n| (*i, *t, *n)))
        .collect();
    let gone = match (before.last_log_index, now.last_log_index) {
        (Some(b), n) if n.is_none_or(|n| n < b) => Some(n.map_or(0, |n| n + 1)..=b),
        _ => None,
    };
    let (first, last, old_term, new_term) = match (replaced.first(), replaced.last(), &gone) {
        (Some(f), Some(l), _) => {
            let last = gone.as_ref().map_or(l.0, |g| *g.end());
            (f.0, last, f.1, Some(f.2))
        }
        (_, _, Some(g)) => (
            *g.start(),
            *g.end(),
            old.get(g.start()).copied().unwrap_or(0),
            None,
        ),
        _ => return None,
    };
    // A purge after a snapshot also shortens nothing at the tail; only a changed or cut tail counts.
    let range = if first == last {
        format!("entry {first}")
    } else {
        format!("entries {first}–{last}")
    };
    let (id, they) = (now.id, if first == last { "it" } else { "they" });
    let why = format!(
        "n{id} dropped {range} of term {old_term}: {they} conflicted with the leader's log"
    );
    Some(match new_term {
        Some(t) => format!("{why} (replaced by term {t})"),
        None => why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status of node `id` in `term` whose log tail is `log` ((index, term) pairs), with five
    /// voters.
    fn status(id: u64, role: &str, term: u64, log: &[(u64, u64)], commit: Option<u64>) -> Status {
        let members: Vec<_> = (0..5)
            .map(|i| serde_json::json!({"id": i, "raft_addr": "", "voter": true}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "id": id, "raft_addr": "", "http_addr": "", "role": role, "term": term,
            "voted_for": null, "vote_committed": true, "leader_id": null, "leader_addr": null,
            "last_log_index": log.last().map(|(i, _)| i), "last_log_term": log.last().map(|(_, t)| t),
            "recent_log": log, "commit_index": commit, "last_applied": commit,
            "snapshot_index": null, "purged_index": null, "members": members, "followers": null,
            "has_quorum": true, "quorum_contact_ms": 0, "pre_vote": true, "keys": 0,
            "uptime_secs": 0, "fatal": null
        }))
        .unwrap()
    }

    #[test]
    fn a_commit_names_the_majority_that_stores_it() {
        let log = [(1, 1), (2, 1), (3, 2)];
        let before = status(1, "leader", 2, &log, Some(2));
        let now = status(1, "leader", 2, &log, Some(3));
        let matched = Matched::from([((1, 0), 3), ((1, 3), 3), ((1, 4), 2)]);
        assert_eq!(
            committed(&before, &now, &matched).unwrap(),
            "n1 committed entry 3 (term 2): stored on n0 n1 n3, a majority of 5"
        );
        // Seen too little to name a majority: say only what was committed.
        let few = Matched::from([((1, 0), 3)]);
        assert_eq!(
            committed(&before, &now, &few).unwrap(),
            "n1 committed entry 3 (term 2)"
        );
        // No move, or not a leader: nothing to say.
        assert_eq!(committed(&now, &now, &matched), None);
        let follower = status(1, "follower", 2, &log, Some(3));
        assert_eq!(committed(&before, &follower, &matched), None);
    }

    #[test]
    fn entries_of_an_earlier_term_commit_with_one_of_the_leaders_term() {
        let log = [(1, 1), (2, 2), (3, 4)];
        let before = status(0, "leader", 4, &log, Some(1));
        let now = status(0, "leader", 4, &log, Some(3));
        let text = committed(&before, &now, &Matched::new()).unwrap();
        assert!(
            text.starts_with("n0 committed entries 2–3 (term 4)"),
            "{text}"
        );
        assert!(
            text.ends_with("only along with one of the leader's term (§5.4.2)"),
            "{text}"
        );
    }

    #[test]
    fn a_follower_that_drops_conflicting_entries_says_which() {
        let before = status(3, "follower", 3, &[(8, 2), (9, 3), (10, 3)], Some(8));
        let replaced = status(3, "follower", 4, &[(8, 2), (9, 4)], Some(8));
        assert_eq!(
            dropped(&before, &replaced).unwrap(),
            "n3 dropped entries 9–10 of term 3: they conflicted with the leader's log (replaced by \
             term 4)"
        );
        let cut = status(3, "follower", 4, &[(8, 2)], Some(8));
        assert_eq!(
            dropped(&before, &cut).unwrap(),
            "n3 dropped entries 9–10 of term 3: they conflicted with the leader's log"
        );
        let grown = status(
            3,
            "follower",
            3,
            &[(8, 2), (9, 3), (10, 3), (11, 3)],
            Some(8),
        );
        assert_eq!(dropped(&before, &grown), None);
    }
}
