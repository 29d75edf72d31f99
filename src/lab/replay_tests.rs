//! The recorder's writer and the replay's cursor over a made-up session: an election, a leader
//! crash, a new leader; and what a cut-short trace does.

use super::*;
use crate::lab::fold::Input;
use crate::lab::recorder::Recorder;
use crate::raft::status::Role;

fn status(id: u64, role: Role, term: u64, commit: u64) -> Option<Status> {
    let json = serde_json::json!({
        "id": id, "raft_addr": "", "http_addr": "", "role": role, "term": term,
        "voted_for": null, "vote_committed": role == Role::Leader, "leader_id": null,
        "leader_addr": null, "last_log_index": commit, "last_log_term": term, "recent_log": [],
        "commit_index": commit, "last_applied": commit, "snapshot_index": null,
        "purged_index": null, "members": [], "followers": {"1": {"matched_index": 1, "last_ack_ms": 5}},
        "has_quorum": true, "quorum_contact_ms": 5, "pre_vote": true, "keys": 0, "uptime_secs": 0,
        "fatal": null
    });
    Some(serde_json::from_value(json).unwrap())
}

/// Records a session through the real writer: n0 leads term 1 and commits 1..=3; at 3 s it is
/// killed; n1 becomes a candidate, then leader of term 2 at 4 s and commits 4.
fn record(dir: &Path) {
    let mut recorder = Recorder::start(dir, 1 << 20).unwrap();
    let mut memory = Memory::default();
    let scene = Scene {
        up: vec![true; 3],
        removed: vec![false; 3],
        slowdown: 1,
        ..Scene::default()
    };
    let mut kv = Vec::new();
    for tick in 0..=50u64 {
        let t = tick * 100;
        let statuses = match t {
            ..3000 => vec![
                status(0, Role::Leader, 1, 1 + tick.min(20) / 10),
                status(1, Role::Follower, 1, 1),
                status(2, Role::Follower, 1, 1),
            ],
            3000..3500 => vec![
                None,
                status(1, Role::Follower, 1, 3),
                status(2, Role::Follower, 1, 3),
            ],
            3500..4000 => vec![
                None,
                status(1, Role::Candidate, 2, 3),
                status(2, Role::Follower, 1, 3),
            ],
            _ => vec![
                None,
                status(1, Role::Leader, 2, 4),
                status(2, Role::Follower, 2, 4),
            ],
        };
        if t == 3000 {
            let note = Input::Note("killed n0".into());
            recorder.input(t, &note);
            memory.fold(t, note);
        }
        if tick % 7 == 0 {
            kv = vec![("k".to_string(), (0..tick).map(|i| i.to_string()).collect())];
        }
        let mut scene = scene.clone();
        scene.up[0] = t < 3000;
        recorder.frame(t, &memory, &scene, &kv);
        let input = Input::Statuses(statuses);
        recorder.input(t, &input);
        memory.fold(t, input);
    }
    // Dropping the recorder waits for the writer to write everything queued and flush.
    drop(recorder);
    let text = std::fs::read_to_string(dir.join("trace.000000.jsonl")).unwrap();
    assert!(text.contains("\"t\":5000"), "the whole session is written");
}

#[test]
fn the_cursor_jumps_to_elections_leader_changes_and_commits_and_seeks_by_time() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path());
    let mut replay = Replay::open(dir.path()).unwrap();
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
    assert_eq!(replay.span(), (0, 5000));
    let leader = |r: &Replay| r.state().leader().map(|s| (s.id, s.term));
    assert_eq!(leader(&replay), Some((0, 1)), "opens on the first state");

    assert!(replay.jump(Some(Mark::Commit), 1));
    assert_eq!(
        replay.state().uptime_ms,
        1000,
        "n0's commit index moved at 1 s"
    );
    assert!(replay.jump(Some(Mark::Election), 1));
    assert_eq!(replay.state().uptime_ms, 3500, "n1 became a candidate");
    assert!(replay.jump(Some(Mark::LeaderChange), 1));
    assert_eq!(replay.state().uptime_ms, 4000);
    assert_eq!(leader(&replay), Some((1, 2)));
    assert!(
        !replay.jump(Some(Mark::LeaderChange), 1),
        "no later leader change"
    );
    assert!(replay.jump(Some(Mark::LeaderChange), -1));
    assert_eq!(leader(&replay), Some((0, 1)));

    replay.seek(3050).unwrap();
    let state = replay.state();
    assert_eq!(state.uptime_ms, 3000);
    assert!(!state.nodes[0].up, "the kill is in the scene");
    assert!(state.timeline.iter().any(|e| e.text == "killed n0"));
    assert_eq!(state.kv[0].1.len(), 28, "contents as of 2.8 s");
    replay.step_seconds(1);
    assert_eq!(replay.state().uptime_ms, 4000);
    replay.step_seconds(-1);
    assert_eq!(replay.state().uptime_ms, 3000);
    replay.step(-1, false);
    assert_eq!(replay.state().replay.unwrap().what, "killed n0");
    assert!(replay.seek(9000).unwrap_err().contains("ends before 9.0s"));
}

#[test]
fn a_trace_cut_short_replays_up_to_the_damage_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    record(dir.path());
    let path = dir.path().join("trace.000000.jsonl");
    let text = std::fs::read(&path).unwrap();
    // Cut at many places within the last lines, as a kill -9 mid-write would.
    for cut in (text.len() - 400..text.len() - 1).step_by(7) {
        std::fs::write(&path, &text[..cut]).unwrap();
        let replay = Replay::open(&path).unwrap();
        let (_, last) = replay.span();
        assert!(last >= 4000, "cut at {cut}: replays to {last} ms");
        if text[cut - 1] != b'\n' {
            assert_eq!(replay.warnings.len(), 1, "cut at {cut}");
        }
        assert!(replay.state().uptime_ms <= last);
    }
    // Damage in the middle: everything before it replays, nothing after.
    let mut damaged = text.clone();
    let middle = text.len() / 2;
    damaged[middle..middle + 5].copy_from_slice(b"#####");
    std::fs::write(&path, &damaged).unwrap();
    let replay = Replay::open(&path).unwrap();
    assert!(replay.warnings[0].contains("replaying up to there"));
    assert!(replay.span().1 < 5000);
    // Cut inside the keyframe: nothing to replay, said plainly.
    std::fs::write(&path, &text[..200]).unwrap();
    let error = Replay::open(&path).err().unwrap();
    assert!(error.contains("no keyframe"), "{error}");
}
