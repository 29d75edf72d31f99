//! End to end: the real `raftkv lab` binary in a tmux terminal (120×40), driven by key presses,
//! read back with `tmux capture-pane`. Uses its own tmux server socket and kills it afterwards.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{free_port_block, free_ports, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");
const WAIT: Duration = Duration::from_secs(30);

struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "lab"]).stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        assert!(
            self.run(&["send-keys", "-t", "lab", "-l", "--", keys])
                .status
                .success()
        );
    }

    /// A named key (tmux's names: Enter, Escape, Left, …).
    fn key(&self, name: &str) {
        assert!(self.run(&["send-keys", "-t", "lab", name]).status.success());
    }

    /// Waits until the screen satisfies `probe`; on timeout, fails showing the last screen.
    async fn wait_for(&self, what: &str, probe: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if probe(&screen) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting until {what}; the screen:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Tmux {
    /// A tmux server of this test's own, running `command` in a `width`×`height` session "lab".
    fn start(name: &str, command: &str, width: u16, height: u16) -> Tmux {
        let tmux = Tmux {
            socket: format!("raftkv-test-{name}-{}", std::process::id()),
        };
        tmux.open(command, width, height);
        tmux
    }

    /// Runs `command` in a new session "lab" (the previous one must have ended).
    fn open(&self, command: &str, width: u16, height: u16) {
        let (w, h) = (width.to_string(), height.to_string());
        let started = self.run(&[
            "new-session",
            "-d",
            "-s",
            "lab",
            "-x",
            &w,
            "-y",
            &h,
            command,
        ]);
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
}

/// Whether tmux is missing here: the test is then skipped, except in CI, where that fails.
fn no_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tmux must be installed in CI (.ci/run installs it)"
    );
    eprintln!("SKIPPED: tmux is not installed; install it to run the end-to-end dashboard tests");
    true
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The id of the node whose line says LEADER (and not LEADER?).
fn leader_on(screen: &str) -> Option<usize> {
    role_on(screen, "LEADER ")
}

/// The first node the nodes pane shows in `role` (e.g. "FOLLOWER ").
fn role_on(screen: &str, role: &str) -> Option<usize> {
    screen
        .lines()
        .find(|l| l.contains(role))
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.trim_start_matches('▶').starts_with('n'))
        })
        .and_then(|w| w.trim_start_matches('▶')[1..].parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_elects_takes_a_request_survives_a_killed_leader_and_quits_cleanly() {
    if no_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Six consecutive free ports for Raft and six for HTTP: the lab's layout, with room for a sixth node.
    let block = free_port_block(12);
    let (base, http) = (block[0], block[6]);
    let control = free_ports(1)[0];
    let command = format!(
        "{BIN} lab --fresh --data-dir {} --raft-port {base} --http-port {} --control 127.0.0.1:{control}",
        dir.path().display(),
        http
    );
    let tmux = Tmux::start("dash", &command, 120, 40);

    let screen = tmux
        .wait_for("a leader is shown", |s| leader_on(s).is_some())
        .await;
    assert!(
        screen.contains("raftkv lab") && screen.contains("RUNNING"),
        "{screen}"
    );
    let leader = leader_on(&screen).unwrap();

    tmux.keys("a");
    tmux.wait_for("the client request is committed", |s| {
        s.contains("APPEND log v1: committed")
    })
    .await;
    tmux.wait_for("the key/value panel shows it", |s| {
        s.contains("log = [\"v1\"]")
    })
    .await;

    tmux.keys(&leader.to_string());
    tmux.keys("k");
    let screen = tmux
        .wait_for("the old leader is down and a new one leads", |s| {
            s.contains("DOWN") && leader_on(s).is_some_and(|l| l != leader)
        })
        .await;
    assert!(screen.contains(&format!("killed n{leader}")), "{screen}");

    // The messages pane: the election that followed the kill, each vote with its fields.
    tmux.keys("m");
    tmux.wait_for(
        "the messages pane lists a granted vote with its fields",
        |s| s.contains("messages: every kind") && s.contains("lastLog") && s.contains("granted"),
    )
    .await;
    tmux.keys("y");
    tmux.wait_for("y shows votes only", |s| s.contains("messages: Vote only"))
        .await;
    tmux.keys("m");
    tmux.wait_for("the timeline is back", |s| s.contains(" timeline "))
        .await;

    // Enter opens the selected node's detail pane (the old leader, down), Enter closes it.
    tmux.key("Enter");
    tmux.wait_for("the detail pane says the node is down", |s| {
        s.contains(&format!("n{leader} in detail")) && s.contains("is down: restart it with r")
    })
    .await;
    tmux.key("Enter");
    tmux.wait_for("the detail pane closes", |s| s.contains(" timeline "))
        .await;
    // f keeps only the timeline lines about the selected node (the killed leader).
    tmux.keys("f");
    tmux.wait_for("the timeline is filtered", |s| {
        s.contains(&format!("timeline of n{leader} (f: all)"))
            && s.contains(&format!("killed n{leader}"))
    })
    .await;
    tmux.keys("f");

    // Stepping: pause, time out a live node, walk its messages one by one, then resume.
    let screen = tmux.screen();
    let other = role_on(&screen, "FOLLOWER ").expect("a follower is shown");
    tmux.keys(&other.to_string());
    tmux.keys(" ");
    tmux.wait_for("the pause shows the held pane", |s| {
        s.contains("PAUSED") && s.contains(" held")
    })
    .await;
    tmux.keys("t");
    tmux.wait_for("its pre-vote requests are held and one is inspected", |s| {
        s.contains(&format!("n{other} timed out"))
            && s.contains("oldest first")
            && s.contains("PreVote term")
            && s.contains("inspector")
    })
    .await;
    // ] chooses the next held message until a pre-vote request is in the inspector.
    for _ in 0..6 {
        tmux.keys("]");
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tmux.screen().contains("candidateId") {
            break;
        }
    }
    tmux.wait_for("a pre-vote request is inspected", |s| {
        s.contains("candidateId")
    })
    .await;
    tmux.keys(".");
    tmux.wait_for("a step delivers the oldest held message", |s| {
        s.contains("delivered #")
    })
    .await;
    tmux.keys("d");
    tmux.keys("+");
    tmux.wait_for("the header shows the speed", |s| {
        s.contains("speed: 2× slower")
    })
    .await;
    tmux.keys("- ");
    tmux.wait_for("resumed at real time", |s| {
        s.contains("RUNNING") && s.contains("speed ×1") && leader_on(s).is_some()
    })
    .await;

    tmux.keys("?");
    tmux.wait_for("the help overlay opens", |s| {
        s.contains("help (? to close)")
    })
    .await;
    tmux.keys("?");
    tmux.wait_for("the help overlay closes", |s| {
        !s.contains("help (? to close)")
    })
    .await;

    tmux.keys("q");
    wait_until(WAIT, "the lab exits on q", || async {
        (!tmux.run(&["has-session", "-t", "lab"]).status.success()).then_some(())
    })
    .await;
}

/// A guided exercise over the dashboard: Enter goes on, a digit answers, the right answer and
/// the reason appear; then the recorded session opens in a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exercise_is_answered_with_keys_and_its_recording_replays() {
    if no_tmux() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let block = free_port_block(12);
    let control = free_ports(1)[0];
    let command = format!(
        "{BIN} lab --exercise startup-election --data-dir {} --raft-port {} --http-port {} --control 127.0.0.1:{control}",
        dir.path().display(),
        block[0],
        block[6]
    );
    let tmux = Tmux::start("exercise", &command, 150, 45);
    tmux.wait_for("the first step waits for Enter", |s| {
        s.contains("step 1 of 5") && s.contains("Enter: next step")
    })
    .await;
    tmux.key("Enter");
    tmux.wait_for("the second step asks", |s| {
        s.contains("press 1–3 to answer")
    })
    .await;
    tmux.keys("2");
    let screen = tmux
        .wait_for("the answer and the reason are shown", |s| {
            s.contains("✓ 2. Moves to term 2") && s.contains("Why: A timeout makes a server")
        })
        .await;
    assert!(screen.contains("✓ nodes.2.status.term == 2"), "{screen}");
    tmux.keys("q");
    wait_until(WAIT, "the exercise quits", || async {
        let listed = tmux.run(&["list-sessions"]);
        (!String::from_utf8_lossy(&listed.stdout).contains("lab:")).then_some(())
    })
    .await;

    let trace = dir.path().join("exercise-startup-election");
    tmux.open(&format!("{BIN} lab --replay {}", trace.display()), 150, 45);
    tmux.wait_for("the replay opens", |s| {
        s.contains("REPLAY") && s.contains("record 1/")
    })
    .await;
    tmux.keys("}");
    tmux.wait_for("the cursor moved a second on", |s| !s.contains("record 1/"))
        .await;
    tmux.keys("q");
}
