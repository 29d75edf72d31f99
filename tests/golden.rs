//! Raft walked through one message at a time, as the paper's figures do, in golden scripts
//! (tests/golden/*): each script starts a cold lab cluster (five followers in term 0, paused) and
//! drives it with the lab's own commands. After every command the cluster settles, and the output
//! is what changed: the lab's answer, the nodes whose state changed, and the messages newly held.
//! Held messages are printed sorted and without their ids, so runs agree. Regenerate the expected
//! output with `UPDATE_GOLDENFILES=1 cargo test --test golden`, then read the diff.
//!
//! Verbs: `timeout N`; `deliver 2-0` (the oldest held message on the link n2 → n0, request or
//! reply; several links may follow), `deliver from=2` (every message held from n2 now),
//! `deliver all`; `drop` likewise; `rpc=Forward` before the links (or `all`) picks only that
//! kind; `request [via=N] key=K value=V` (answered by `requests`, which waits for the answers); `cut FROM-TO`, `isolate N`, `heal`, `kill N`, `restart N`, `pause`,
//! `resume`, `load N` (N writes while running, until the reachable followers know the commit),
//! `status`, `held`. A command in parentheses runs without output.

mod common;

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use raftkv::cluster::{Cluster, loopback_configs};
use raftkv::lab::{self, Lab, LabCommand};
use raftkv::observe::Held;
use raftkv::raft::status::Status;
use tempfile::TempDir;

struct Runner {
    rt: tokio::runtime::Runtime,
    lab: Option<Lab>,
    _dir: TempDir,
    /// Whether the cluster has run on its own (`resume`): how far a time-out then moves the clock
    /// depends on when the pause came, and is not printed.
    ran: bool,
    /// Client requests sent and not yet reported, in the order sent.
    requests: Vec<(String, tokio::task::JoinHandle<Result<String, String>>)>,
}

impl Runner {
    fn new(pre_vote: bool) -> Runner {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = TempDir::new().unwrap();
        let lab = rt.block_on(async {
            let timing = raftkv::config::Timing {
                pre_vote,
                ..common::timing()
            };
            let ports = (common::free_ports(5), common::free_ports(5));
            let configs = loopback_configs(&ports.0, &ports.1, dir.path(), timing);
            let cluster = Cluster::start_paused(configs)
                .await
                .expect("cluster starts");
            // Every founding server campaigns as soon as it initializes (openraft); wait until
            // all five have, so every script starts from the same state.
            let settled = cluster.settle(Duration::from_millis(300), Duration::from_secs(10));
            assert!(settled.await, "the paused cluster settles");
            lab::spawn(cluster).await.0
        });
        Runner {
            rt,
            lab: Some(lab),
            _dir: dir,
            ran: false,
            requests: Vec::new(),
        }
    }

    /// Waits until the lab's published state (held messages, nodes) has not changed for 400 ms
    /// (the engine publishes every 100 ms), for at most 10 s: a client request is not a lab
    /// step, so the engine does not settle the cluster around it.
    fn until_quiet(&self) {
        let look = || {
            let state = self.lab().state();
            let held: Vec<u64> = state.held.iter().map(|h| h.id).collect();
            (held, nodes(&state))
        };
        self.rt.block_on(async {
            let (start, mut last, mut since) = (Instant::now(), look(), Instant::now());
            while since.elapsed() < Duration::from_millis(400)
                && start.elapsed() < Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let now = look();
                if now != last {
                    (last, since) = (now, Instant::now());
                }
            }
        });
    }

    /// Writes `n` values one after another through the leader (the cluster must be running),
    /// then waits until every node the leader reaches has learned the last commit, so that what
    /// follows starts from the same state on every run.
    fn load(&self, n: usize) -> Result<String, Box<dyn Error>> {
        let state = self.lab().state();
        let leader = state.leader().ok_or("no leader")?;
        // Each write awaited before the next is one entry: the log will end exactly here.
        let last = leader.last_log_index.unwrap_or(0) + n as u64;
        let leader = leader.id as usize;
        for i in 0..n {
            self.run_lab(LabCommand::Request {
                via: Some(leader),
                key: "load".into(),
                value: i.to_string(),
            })?;
        }
        let caught_up = |s: &raftkv::lab::LabState| {
            let leader = s.leader()?;
            // The state is published every 100 ms: wait for one with every write committed.
            (leader.commit_index == Some(last)).then_some(())?;
            let cut = |id: usize| s.links.iter().any(|l| l.cut && l.to == id as u64);
            let all = s.nodes.iter().filter(|n| n.up && !cut(n.id));
            all.flat_map(|n| n.status.as_ref())
                .all(|st| st.commit_index == leader.commit_index)
                .then_some(())
        };
        self.rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while caught_up(&self.lab().state()).is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        caught_up(&self.lab().state()).ok_or("the followers did not learn the commit")?;
        Ok(format!("{n} writes committed"))
    }

    fn lab(&self) -> &Lab {
        self.lab.as_ref().expect("the lab runs")
    }

    fn run_lab(&self, command: LabCommand) -> Result<String, Box<dyn Error>> {
        Ok(self.rt.block_on(self.lab().run(command))?)
    }

    /// The ids of the held messages `args` name: `2-0` (the oldest on that link; several links
    /// may follow, delivered in the order given), `from=2` (every one held from n2 now), `all`
    /// (every one held now); several go link by link.
    fn pick(&self, args: &mut goldenscript::ArgumentConsumer) -> Result<Vec<u64>, Box<dyn Error>> {
        let held = self.lab().state().held;
        // Several messages go link by link (n0 → n1 before n0 → n2 …), not in the order they
        // were held: concurrent sends are held in whatever order they raced.
        let mut by_link: Vec<&Held> = held.iter().collect();
        by_link.sort_by_key(|h| (h.from, h.to, h.id));
        if let Some(from) = args.take_key("from") {
            let from: u64 = from.parse()?;
            let from_there = by_link.iter().filter(|h| h.from == from);
            return Ok(from_there.map(|h| h.id).collect());
        }
        // `rpc=Forward` (say): only messages of that kind, on the links that follow.
        let rpc = args.take_key("rpc").map(str::to_owned);
        let kind = |h: &Held| rpc.as_ref().is_none_or(|r| format!("{:?}", h.rpc) == *r);
        let mut ids = Vec::new();
        while let Some(link) = args.next_pos() {
            if link == "all" {
                ids.extend(by_link.iter().filter(|h| kind(h)).map(|h| h.id));
                continue;
            }
            let (from, to) = link
                .split_once('-')
                .ok_or_else(|| format!("a link is FROM-TO, not {link:?}"))?;
            let (from, to): (u64, u64) = (from.parse()?, to.parse()?);
            let oldest = held
                .iter()
                .find(|h| (h.from, h.to) == (from, to) && kind(h) && !ids.contains(&h.id))
                .ok_or_else(|| format!("nothing is held on {link}"))?;
            ids.push(oldest.id);
        }
        Ok(ids)
    }

    /// Delivers or drops the messages `args` name, one at a time, each settled before the next.
    fn release(
        &self,
        args: &mut goldenscript::ArgumentConsumer,
        deliver: bool,
    ) -> Result<String, Box<dyn Error>> {
        let mut out = Vec::new();
        for message in self.pick(args)? {
            let command = if deliver {
                LabCommand::Deliver { message }
            } else {
                LabCommand::Drop { message }
            };
            out.push(without_ids(&self.run_lab(command)?));
        }
        out.sort();
        Ok(out.join("\n"))
    }
}

/// A lab answer without message ids (they depend on which of several concurrent sends was held
/// first).
fn without_ids(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '#' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            if chars.peek() == Some(&' ') {
                chars.next();
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// `moved on 401 ms` becomes `moved on … ms`.
fn without_clock_moves(text: &str) -> String {
    match text.split_once("moved on ") {
        Some((head, tail)) => {
            let rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{head}moved on …{rest}")
        }
        None => text.to_string(),
    }
}

fn held_lines(held: &[Held]) -> Vec<String> {
    let mut lines: Vec<String> = held
        .iter()
        .map(|h| without_ids(&raftkv::lab::message::held_line(h)))
        .collect();
    lines.sort();
    lines
}

/// One node in the paper's terms: server state, term, vote, log as index@term, commit index.
fn node_line(id: usize, s: Option<&Status>) -> String {
    let Some(s) = s else {
        return format!("n{id} down");
    };
    let log: Vec<String> = s
        .recent_log
        .iter()
        .map(|(i, t)| format!("{i}@{t}"))
        .collect();
    let vote = s.voted_for.map_or("-".into(), |v| format!("n{v}"));
    format!(
        "n{id} {:?} term {} vote {vote} log [{}] commit {}",
        s.role,
        s.term,
        log.join(" "),
        s.commit_index.map_or("-".into(), |c| c.to_string())
    )
}

fn nodes(state: &raftkv::lab::LabState) -> BTreeMap<usize, String> {
    state
        .nodes
        .iter()
        .map(|n| (n.id, node_line(n.id, n.status.as_ref())))
        .collect()
}

impl goldenscript::Runner for Runner {
    type Command = goldenscript::Command;

    fn run(
        &mut self,
        command: &goldenscript::Command,
        _: &goldenscript::Context,
    ) -> Result<String, Box<dyn Error>> {
        let before = self.lab().state();
        let mut args = command.consume_args();
        let id = |a: Option<&str>| -> Result<usize, Box<dyn Error>> {
            Ok(a.ok_or("a node id is needed")?.parse()?)
        };
        let answer = match command.name.as_str() {
            "timeout" => self.run_lab(LabCommand::TimeOut {
                id: id(args.next_pos())?,
            })?,
            "kill" => self.run_lab(LabCommand::Kill {
                id: id(args.next_pos())?,
            })?,
            "restart" => self.run_lab(LabCommand::Restart {
                id: id(args.next_pos())?,
            })?,
            "deliver" | "drop" => self.release(&mut args, command.name == "deliver")?,
            "cut" => {
                let link = args.next_pos().ok_or("cut FROM-TO")?;
                let (from, to) = link.split_once('-').ok_or("cut FROM-TO")?;
                self.run_lab(LabCommand::Cut {
                    from: from.parse()?,
                    to: to.parse()?,
                })?
            }
            "heal" => self.run_lab(LabCommand::Heal)?,
            "pause" => self.run_lab(LabCommand::Pause)?,
            "resume" => {
                self.ran = true;
                let out = self.run_lab(LabCommand::Resume)?;
                // Running on its own, the cluster settles by itself (heartbeats carry the commit
                // index): what the next command shows must not depend on how far it got.
                self.until_quiet();
                out
            }
            "isolate" => self.run_lab(LabCommand::Isolate {
                id: id(args.next_pos())?,
            })?,
            "load" => {
                let n: usize = args.next_pos().ok_or("load N")?.parse()?;
                self.load(n)?
            }
            "request" => {
                let via = args.take_key("via").map(str::parse).transpose()?;
                let key = args.take_key("key").ok_or("key=")?.to_string();
                let value = args.take_key("value").ok_or("value=")?.to_string();
                let lab = self.lab().clone();
                let what = format!("APPEND {key} {value}");
                let sent = self
                    .rt
                    .spawn(async move { lab.run(LabCommand::Request { via, key, value }).await });
                self.requests.push((what.clone(), sent));
                self.until_quiet();
                format!("sent {what}")
            }
            "requests" => {
                let mut out = Vec::new();
                for (what, task) in self.requests.drain(..) {
                    let answer = self.rt.block_on(async {
                        tokio::time::timeout(Duration::from_secs(10), task).await
                    });
                    out.push(match answer {
                        Ok(Ok(Ok(_))) => format!("{what}: committed"),
                        Ok(Ok(Err(why))) => format!("{what}: failed: {why}"),
                        Ok(Err(e)) => format!("{what}: {e}"),
                        Err(_) => format!("{what}: no answer in 10 s"),
                    });
                }
                out.join("\n")
            }
            "status" => {
                let state = self.lab().state();
                return Ok(nodes(&state).into_values().collect::<Vec<_>>().join("\n") + "\n");
            }
            "held" => {
                let state = self.lab().state();
                return Ok(held_lines(&state.held).join("\n") + "\n");
            }
            other => return Err(format!("unknown verb {other}").into()),
        };
        args.reject_next()?;
        let after = self.lab().state();
        let mut out = without_ids(&answer);
        if self.ran {
            out = without_clock_moves(&out);
        }
        out.push('\n');
        // What the lab's timeline says happened (its reasons), besides the command itself: its
        // new lines, and lines said again (a repeat counts up a line, and a decision said again
        // moves its line to the newest place, so the timeline need not grow).
        let answers: Vec<String> = answer.lines().map(without_ids).collect();
        let old: std::collections::HashSet<_> = before
            .timeline
            .iter()
            .map(|l| (l.at_ms, &l.text, l.count))
            .collect();
        let mut said: Vec<String> = after
            .timeline
            .iter()
            .filter(|l| !old.contains(&(l.at_ms, &l.text, l.count)))
            .map(|line| without_ids(&line.text))
            .filter(|text| !answers.contains(text) && !text.starts_with("client→"))
            .collect();
        said.sort();
        for line in said {
            writeln!(out, "  says: {line}")?;
        }
        let (was, now) = (nodes(&before), nodes(&after));
        for (id, line) in &now {
            if was.get(id) != Some(line) {
                writeln!(out, "  {line}")?;
            }
        }
        let old: Vec<u64> = before.held.iter().map(|h| h.id).collect();
        let new: Vec<Held> = after
            .held
            .iter()
            .filter(|h| !old.contains(&h.id))
            .cloned()
            .collect();
        for line in held_lines(&new) {
            writeln!(out, "  held: {line}")?;
        }
        Ok(out)
    }

    fn end_script(&mut self) -> Result<(), Box<dyn Error>> {
        if let Some(lab) = self.lab.take() {
            // Dropping the last handle stops the engine, which shuts the cluster down.
            self.rt.block_on(async move {
                drop(lab);
                tokio::time::sleep(Duration::from_millis(200)).await;
            });
        }
        Ok(())
    }
}

fn run(script: &str, pre_vote: bool) {
    let mut runner = Runner::new(pre_vote);
    goldenscript::run(&mut runner, format!("tests/golden/{script}")).expect("script runs");
}

#[test]
fn election() {
    run("election", false);
}

#[test]
fn commit() {
    run("commit", false);
}

#[test]
fn split_vote() {
    run("split-vote", false);
}

#[test]
fn stale_log() {
    run("stale-log", false);
}

#[test]
fn conflict() {
    run("conflict", false);
}

#[test]
fn pre_vote() {
    run("pre-vote", true);
}

#[test]
fn back_up() {
    run("back-up", true);
}

#[test]
fn lost_reply() {
    run("lost-reply", false);
}
