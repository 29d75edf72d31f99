//! Every built-in guided exercise runs headless against a real lab (`raftkv lab --exercise NAME
//! --headless`) and its outcome checks out: exit status 0. A wrong prediction cannot fail these
//! (nobody answers headless); a cluster that did not behave as the exercise says does.

mod common;

use std::time::Duration;

use common::free_port_block;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

/// Runs `raftkv lab --exercise NAME --headless` on ports of its own; (exit code, stdout, stderr).
async fn run(exercise: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    // Room for a sixth node on each block (the learner exercise adds one) and the control API.
    let ports = free_port_block(13);
    let out = tokio::time::timeout(
        Duration::from_secs(240),
        Command::new(BIN)
            .args(["lab", "--headless", "--exercise", exercise, "--data-dir"])
            .arg(dir.path())
            .args(["--raft-port", &ports[0].to_string()])
            .args(["--http-port", &ports[6].to_string()])
            .args(["--control", &format!("127.0.0.1:{}", ports[12])])
            .env("RUST_LOG", "error")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the exercise finishes within 4 minutes")
    .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

async fn passes(exercise: &str) {
    let (code, stdout, stderr) = run(exercise).await;
    println!("{stdout}");
    assert_eq!(code, 0, "{exercise} did not check out:\n{stdout}\n{stderr}");
    assert!(stdout.contains("Every check held."));
    assert!(!stdout.contains('✗'), "no check failed");
}

#[tokio::test]
async fn startup_election() {
    passes("startup-election").await;
}

#[tokio::test]
async fn split_vote() {
    passes("split-vote").await;
}

#[tokio::test]
async fn leader_crash_with_an_uncommitted_entry() {
    passes("leader-crash").await;
}

#[tokio::test]
async fn minority_partition_with_and_without_pre_vote() {
    passes("pre-vote").await;
}

#[tokio::test]
async fn figure_8_overwrites_an_old_term_entry_stored_on_a_majority() {
    passes("figure-8").await;
}

#[tokio::test]
async fn stale_local_read_and_refused_linearizable_read_on_an_isolated_leader() {
    passes("stale-read").await;
}

#[tokio::test]
async fn a_learner_catches_up_and_is_promoted() {
    passes("learner").await;
}

#[tokio::test]
async fn the_list_names_every_exercise_first_and_an_unknown_one_is_refused() {
    let out = Command::new(BIN)
        .args(["lab", "--list-exercises"])
        .output()
        .await
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "startup-election",
            "split-vote",
            "leader-crash",
            "pre-vote",
            "figure-8",
            "stale-read",
            "learner"
        ]
    );
    let (code, _, stderr) = run("no-such-exercise").await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no exercise \"no-such-exercise\""),
        "{stderr}"
    );
}

/// A teacher's file whose outcome does not happen: exit 1, the failing check named.
#[tokio::test]
async fn an_exercise_whose_outcome_does_not_happen_exits_1_naming_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.toml");
    std::fs::write(
        &file,
        "name = \"wrong\"\ntitle = \"Wrong on purpose\"\nsummary = \"expects two leaders\"\n\
         [[steps]]\nsay = \"wait for a leader\"\ndo = [\"until leader != null\"]\n\
         expect = [\"leader == 7\"]\n",
    )
    .unwrap();
    let (code, stdout, _) = run(file.to_str().unwrap()).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("✗ leader == 7"), "{stdout}");
}
