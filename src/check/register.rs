//! A single-register workload checked for linearizability by stateright's
//! `LinearizabilityTester` (a maintained checker, not a hand-written search). Each key `r<k>` is
//! one register: PUT writes a one-element list, GET reads it (404 = the initial, empty register).
//! Each key is checked on its own, with a few clients per key so the search stays small.
//!
//! How outcomes enter the tester: an acknowledged op is invoked and returns; a write that
//! certainly failed is left out; an op with an unknown outcome is invoked and never returns (the
//! tester may place it anywhere after its invocation, or drop it), and its client continues as a
//! new logical thread, since a thread may have only one operation in flight. Events are fed in
//! real-time order, taken from one atomic counter at the moment each event happens (just before a
//! request is sent, just after its reply arrives), so there are no ties to break.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stateright::semantics::register::{Register, RegisterOp, RegisterRet};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester};
use tokio::time::Instant;

use super::election::{self, Leaders};
use super::nemesis::{inject_faults, recover};
use crate::cluster::Cluster;

type Value = Option<String>;

/// Stack for the checking thread (reserved address space, touched only as deep as needed).
const CHECK_STACK: usize = 1 << 30;

#[derive(Clone, Debug, serde::Serialize)]
struct Event {
    key: usize,
    /// Position in real time among all events of the run.
    seq: u64,
    /// (client, generation): a new generation after each unknown outcome.
    thread: (usize, u32),
    step: Step,
}

#[derive(Clone, Debug, serde::Serialize)]
enum Step {
    Invoke(RegisterOp<Value>),
    /// Invoked, and the outcome is unknown: it never returns.
    Pending(RegisterOp<Value>),
    Return(RegisterRet<Value>),
}

#[derive(Clone, Debug)]
pub struct Config {
    pub keys: usize,
    pub clients_per_key: usize,
    pub duration: Duration,
    pub fault_every: Duration,
    pub seed: u64,
    /// Each client waits a random time up to this between operations. The pauses make the
    /// quiescent points where the checker cuts a key's history (see `first_violation`); without
    /// them one segment could span the whole run.
    pub think: Duration,
    /// Read with `?consistency=local`: allowed to be stale, so the checker should object.
    pub local_reads: bool,
    /// Time allowed for checking one key's history.
    pub check_budget: Duration,
}

#[derive(Debug)]
pub struct Run {
    pub ops: usize,
    pub ok: usize,
    pub unknown: usize,
    /// Keys whose history is not linearizable.
    pub violations: Vec<String>,
    /// Keys whose check ran out of time: neither a pass nor a proof of a violation.
    pub undecided: Vec<String>,
    pub faults: Vec<String>,
    /// Who led in which term, as seen on the wire (Election Safety).
    pub leaders: Leaders,
    /// How long the linearizability check took.
    pub checked_in: Duration,
}

/// Checks one key's history; returns `None` if it is linearizable, or the length of a prefix
/// that is not (it ends with the segment that left no possible register value).
///
/// stateright's search is a depth-first search without memoisation that copies the remaining
/// history at every step: quadratic memory in a history's length (a 60 s run reached 6 GB) and
/// exponential time when no linearization exists. So the history is cut at quiescent points,
/// where every operation invoked so far has returned and none is in flight. Everything before
/// such a point precedes everything after it in real time, so the register's value there is the
/// only thing the two sides share, and each segment is checked on its own from every value the
/// previous one may have left ([`next_values`]). A write of unknown outcome never returns, so
/// the history after one that is still pending is a single last segment.
fn first_violation(mut events: Vec<Event>) -> Result<Option<usize>, String> {
    settle_unknown_writes(&mut events);
    let mut in_flight = 0usize;
    let mut pending = false;
    let segments: Vec<&[Event]> = events
        .split_inclusive(|e| {
            match e.step {
                Step::Invoke(_) => in_flight += 1,
                Step::Pending(_) => pending = true,
                Step::Return(_) => in_flight = in_flight.saturating_sub(1),
            }
            in_flight == 0 && !pending
        })
        .collect();
    let mut values: Vec<Value> = vec![None];
    let mut checked = 0;
    for (n, segment) in segments.iter().enumerate() {
        checked += segment.len();
        if n + 1 == segments.len() {
            // The last segment only has to have a linearization; what it leaves does not matter.
            if !from_any(&values, segment, None)? {
                return Ok(Some(checked));
            }
            break;
        }
        values = next_values(&values, segment)?;
        if values.is_empty() {
            return Ok(Some(checked));
        }
    }
    Ok(None)
}

/// The register values a quiescent `segment` may leave, starting from any of `from`. With no
/// write in it, the values it may start from and still be linearizable. Otherwise the value of
/// a write that may be linearized last: no other write of the segment was invoked after it
/// returned (that one would have to come later), and the segment has a linearization from some
/// value of `from` that ends in it (checked with a read of that value after everything else).
fn next_values(from: &[Value], segment: &[Event]) -> Result<Vec<Value>, String> {
    let mut invoked = HashMap::new();
    let mut writes = Vec::new();
    for e in segment {
        match &e.step {
            Step::Invoke(op) | Step::Pending(op) => {
                invoked.insert(e.thread, (op, e.seq));
            }
            Step::Return(_) => {
                if let Some((RegisterOp::Write(v), at)) = invoked.remove(&e.thread) {
                    writes.push((v.clone(), at, e.seq));
                }
            }
        }
    }
    let mut next = Vec::new();
    if writes.is_empty() {
        for v in from {
            if linearizable_from(v, segment, None)? {
                next.push(v.clone());
            }
        }
        return Ok(next);
    }
    let last_invoked = writes.iter().map(|&(_, at, _)| at).max().unwrap_or(0);
    for (last, _, returned) in &writes {
        if *returned > last_invoked && from_any(from, segment, Some(last))? {
            next.push(last.clone());
        }
    }
    Ok(next)
}

/// Whether `segment` has a linearization from some value of `from` (ending in `ending`).
fn from_any(from: &[Value], segment: &[Event], ending: Option<&Value>) -> Result<bool, String> {
    for start in from {
        if linearizable_from(start, segment, ending)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `segment` has a linearization starting from the register value `start`; with
/// `ending`, one after which the register holds that value.
fn linearizable_from(
    start: &Value,
    segment: &[Event],
    ending: Option<&Value>,
) -> Result<bool, String> {
    /// A thread no client has: the read that pins the segment's final value.
    const FINAL_READ: (usize, u32) = (usize::MAX, u32::MAX);
    let mut tester: LinearizabilityTester<(usize, u32), Register<Value>> =
        LinearizabilityTester::new(Register(start.clone()));
    for e in segment {
        match &e.step {
            Step::Invoke(op) | Step::Pending(op) => tester.on_invoke(e.thread, op.clone())?,
            Step::Return(ret) => tester.on_return(e.thread, ret.clone())?,
        };
    }
    if let Some(value) = ending {
        tester.on_invoke(FINAL_READ, RegisterOp::Read)?;
        tester.on_return(FINAL_READ, RegisterRet::ReadOk(value.clone()))?;
    }
    Ok(tester.is_consistent())
}

/// Rewrites writes of unknown outcome into equivalent, cheaper forms (each value is unique):
/// - one whose value no read returned is left out: if a linearization places it, removing it
///   changes only the window before the next write, and no read lies there;
/// - one whose value a read returned took effect before that read completed, so it gets a
///   completion just before the first such read's. No linearization is lost: its point already
///   lay before that read's.
///
/// Left as they were, each could sit anywhere after its invocation, and stateright's search
/// tried every place: minutes for a handful. Sorts `events` into real-time order.
fn settle_unknown_writes(events: &mut Vec<Event>) {
    let mut first_read: HashMap<String, u64> = HashMap::new();
    for e in events.iter_mut() {
        // Room for a completion just before any event.
        e.seq *= 2;
        if let Step::Return(RegisterRet::ReadOk(Some(v))) = &e.step {
            let seq = first_read.entry(v.clone()).or_insert(e.seq);
            *seq = (*seq).min(e.seq);
        }
    }
    let mut completions = Vec::new();
    events.retain_mut(|e| {
        let Step::Pending(RegisterOp::Write(Some(v))) = &e.step else {
            return true;
        };
        match first_read.get(v) {
            None => false,
            Some(&read) if read > e.seq => {
                completions.push(Event {
                    seq: read - 1,
                    step: Step::Return(RegisterRet::WriteOk),
                    ..e.clone()
                });
                e.step = Step::Invoke(RegisterOp::Write(Some(v.clone())));
                true
            }
            // Read before it was even invoked: left pending for the checker to reject.
            Some(_) => true,
        }
    });
    events.extend(completions);
    events.sort_by_key(|e| e.seq);
}

pub async fn run(mut cluster: Cluster, config: Config) -> anyhow::Result<Run> {
    let (http, timeout) = super::endpoints(&cluster);
    let watch = election::Watch::start(&cluster);
    let started = Instant::now();
    let clock = Arc::new(AtomicU64::new(0));
    let deadline = started + config.duration;
    let events: Arc<Mutex<Vec<Event>>> = Default::default();
    let counts: Arc<Mutex<(usize, usize, usize)>> = Default::default();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for key in 0..config.keys {
        for c in 0..config.clients_per_key {
            let (events, counts, client, http, clock) = (
                events.clone(),
                counts.clone(),
                client.clone(),
                http.clone(),
                clock.clone(),
            );
            let tick = move || clock.fetch_add(1, Ordering::SeqCst);
            let mut rng = StdRng::seed_from_u64(config.seed ^ ((key * 1000 + c) as u64 + 1));
            tasks.push(tokio::spawn(async move {
                let mut generation = 0u32;
                let think_ms = config.think.as_millis() as u64;
                let local_reads = config.local_reads;
                for n in 0u64.. {
                    if think_ms > 0 {
                        let pause = rng.random_range(0..=think_ms);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    let url = format!("{}/keys/r{key}", http[rng.random_range(0..http.len())]);
                    let write = rng.random_bool(0.5);
                    let value = format!("c{c}-{n}");
                    let op = if write {
                        RegisterOp::Write(Some(value.clone()))
                    } else {
                        RegisterOp::Read
                    };
                    let thread = (c, generation);
                    let invoked = Event {
                        key,
                        seq: tick(),
                        thread,
                        step: Step::Invoke(op),
                    };
                    let result = if write {
                        let body = serde_json::json!({"type": "PUT", "value": [value]});
                        client.post(&url).json(&body).timeout(timeout).send().await
                    } else {
                        let query: &[(&str, &str)] = if local_reads {
                            &[("consistency", "local")]
                        } else {
                            &[]
                        };
                        client.get(&url).query(query).timeout(timeout).send().await
                    };
                    let returned = tick();
                    let ret = classify(write, result).await;
                    let mut counts = counts.lock().unwrap();
                    counts.0 += 1;
                    let mut events = events.lock().unwrap();
                    match ret {
                        Reply::Done(ret) => {
                            counts.1 += 1;
                            events.push(invoked);
                            events.push(Event {
                                key,
                                seq: returned,
                                thread,
                                step: Step::Return(ret),
                            });
                        }
                        // Certainly not applied (a write) or nothing learned (a read): leave it out.
                        Reply::Failed => {}
                        Reply::Unknown => {
                            counts.2 += 1;
                            let Step::Invoke(op) = invoked.step else {
                                unreachable!("built as an invocation above")
                            };
                            events.push(Event {
                                step: Step::Pending(op),
                                ..invoked
                            });
                            generation += 1;
                        }
                    }
                }
            }));
        }
    }
    let faults = inject_faults(
        &mut cluster,
        config.fault_every,
        deadline,
        config.seed,
        || started.elapsed().as_millis() as u64,
    )
    .await?;
    for task in tasks {
        task.await?;
    }
    recover(&mut cluster).await?;
    let leaders = watch.finish().await?;
    cluster.shutdown().await;
    let events = events.lock().unwrap().clone();
    let checking = std::time::Instant::now();
    let mut violations = Vec::new();
    let mut undecided = Vec::new();
    for key in 0..config.keys {
        let of_key: Vec<Event> = events.iter().filter(|e| e.key == key).cloned().collect();
        // stateright's search recurses once per operation; a few thousand operations need more
        // than a default thread stack. A search that runs past the budget is reported as
        // undecided (never as a pass) and left to finish on its own thread.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .stack_size(CHECK_STACK)
            .spawn(move || tx.send(first_violation(of_key)))?;
        match rx.recv_timeout(config.check_budget) {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(n))) => violations.push(format!(
                "r{key}: the first {n} events have no linearization"
            )),
            Ok(Err(e)) => violations.push(format!("r{key}: invalid history: {e}")),
            Err(_) => undecided.push(format!(
                "r{key}: no verdict within {:?}; history in {}",
                config.check_budget,
                keep_history(key, &events)?.display()
            )),
        }
    }
    let (ops, ok, unknown) = *counts.lock().unwrap();
    Ok(Run {
        ops,
        ok,
        unknown,
        violations,
        undecided,
        faults,
        leaders,
        checked_in: checking.elapsed(),
    })
}

/// Writes one key's history as JSON to the temp dir, for a closer look.
fn keep_history(key: usize, events: &[Event]) -> anyhow::Result<std::path::PathBuf> {
    let of_key: Vec<&Event> = events.iter().filter(|e| e.key == key).collect();
    let path = std::env::temp_dir().join(format!(
        "raftkv-register-{}-r{key}.json",
        std::process::id()
    ));
    std::fs::write(&path, serde_json::to_vec(&of_key)?)?;
    Ok(path)
}

enum Reply {
    Done(RegisterRet<Value>),
    Failed,
    Unknown,
}

async fn classify(write: bool, result: reqwest::Result<reqwest::Response>) -> Reply {
    match result {
        Ok(r) => match (write, r.status().as_u16()) {
            (true, 204) => Reply::Done(RegisterRet::WriteOk),
            (true, 503) => match r.text().await {
                Ok(t) if t.starts_with("unavailable:") => Reply::Failed,
                _ => Reply::Unknown,
            },
            (true, _) => Reply::Unknown,
            (false, 200) => match r.json::<Vec<String>>().await {
                Ok(list) if list.len() == 1 => {
                    Reply::Done(RegisterRet::ReadOk(list.into_iter().next()))
                }
                // Anything but a one-element list cannot come from this workload's writes.
                Ok(list) => Reply::Done(RegisterRet::ReadOk(Some(format!("unexpected {list:?}")))),
                Err(_) => Reply::Failed,
            },
            (false, 404) => Reply::Done(RegisterRet::ReadOk(None)),
            (false, _) => Reply::Failed,
        },
        Err(e) if write && !e.is_connect() => Reply::Unknown,
        Err(_) => Reply::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, client: usize, step: Step) -> Event {
        Event {
            key: 0,
            seq,
            thread: (client, 0),
            step,
        }
    }
    fn w(v: &str) -> Step {
        Step::Invoke(RegisterOp::Write(Some(v.into())))
    }
    fn r() -> Step {
        Step::Invoke(RegisterOp::Read)
    }
    fn ok() -> Step {
        Step::Return(RegisterRet::WriteOk)
    }
    fn got(v: Option<&str>) -> Step {
        Step::Return(RegisterRet::ReadOk(v.map(str::to_owned)))
    }

    fn linearizable(h: Vec<Event>) -> Result<bool, String> {
        first_violation(h).map(|v| v.is_none())
    }

    #[test]
    fn a_read_after_a_completed_write_sees_it() {
        let h = vec![
            ev(0, 0, w("a")),
            ev(10, 0, ok()),
            ev(20, 1, r()),
            ev(30, 1, got(Some("a"))),
        ];
        assert_eq!(linearizable(h), Ok(true));
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_not_linearizable() {
        let h = vec![
            ev(0, 0, w("a")),
            ev(10, 0, ok()),
            ev(20, 1, r()),
            ev(30, 1, got(None)),
        ];
        assert_eq!(linearizable(h), Ok(false));
    }

    #[test]
    fn a_write_in_flight_may_or_may_not_be_seen() {
        let seen = vec![ev(0, 0, w("a")), ev(20, 1, r()), ev(30, 1, got(Some("a")))];
        let unseen = vec![ev(0, 0, w("a")), ev(20, 1, r()), ev(30, 1, got(None))];
        assert_eq!(linearizable(seen), Ok(true));
        assert_eq!(linearizable(unseen), Ok(true));
    }

    #[test]
    fn reads_going_back_in_time_are_not_linearizable() {
        let h = vec![
            ev(0, 0, w("a")),
            ev(5, 0, ok()),
            ev(6, 0, w("b")),
            ev(10, 0, ok()),
            ev(20, 1, r()),
            ev(30, 1, got(Some("b"))),
            ev(40, 2, r()),
            ev(50, 2, got(Some("a"))),
        ];
        assert_eq!(linearizable(h), Ok(false));
    }

    #[test]
    fn a_late_violation_is_found_in_the_prefix_that_contains_it() {
        let mut h = Vec::new();
        for i in 0..200u64 {
            h.push(ev(2 * i, 0, w(&format!("v{i}"))));
            h.push(ev(2 * i + 1, 0, ok()));
        }
        let good = h.clone();
        h.push(ev(400, 1, r()));
        h.push(ev(401, 1, got(Some("v3"))));
        assert_eq!(first_violation(good), Ok(None));
        assert_eq!(first_violation(h), Ok(Some(402)));
    }

    #[test]
    fn the_value_left_by_concurrent_writes_carries_across_a_quiescent_point() {
        // Writes a and b overlap and both complete; either may be last. The first read after
        // the pause settles which one; later reads must agree with it.
        let writes = vec![
            ev(0, 0, w("a")),
            ev(1, 1, w("b")),
            ev(2, 0, ok()),
            ev(3, 1, ok()),
        ];
        let reads = |first: &str, second: &str| {
            let mut h = writes.clone();
            h.push(ev(10, 2, r()));
            h.push(ev(11, 2, got(Some(first))));
            h.push(ev(20, 2, r()));
            h.push(ev(21, 2, got(Some(second))));
            h
        };
        assert_eq!(linearizable(reads("a", "a")), Ok(true));
        assert_eq!(linearizable(reads("b", "b")), Ok(true));
        assert_eq!(first_violation(reads("a", "b")), Ok(Some(8)));
        assert_eq!(first_violation(reads("b", "a")), Ok(Some(8)));
        // Inside one segment (client 3's read spans it), a read after both writes saw a: the
        // segment leaves a, not b, although either write alone could have been last.
        let settled = |later: &str| {
            let mut h = vec![ev(0, 3, r()), ev(1, 0, w("a")), ev(2, 1, w("b"))];
            h.extend([ev(3, 0, ok()), ev(4, 1, ok()), ev(5, 2, r())]);
            h.extend([ev(6, 2, got(Some("a"))), ev(7, 3, got(None))]);
            h.extend([ev(10, 2, r()), ev(11, 2, got(Some(later)))]);
            h
        };
        assert_eq!(linearizable(settled("a")), Ok(true));
        assert_eq!(first_violation(settled("b")), Ok(Some(10)));
    }

    #[test]
    fn a_long_history_is_checked_segment_by_segment() {
        // 60,000 events: each round a write overlaps a read that sees the old or the new value,
        // then all is quiet. One search over it all needed memory quadratic in its length.
        let mut h = Vec::new();
        let mut seq = 0;
        let mut at = |h: &mut Vec<Event>, client: usize, step: Step| {
            h.push(ev(seq, client, step));
            seq += 1;
        };
        for i in 0..15_000usize {
            let (writer, reader) = (i % 3, (i + 1) % 3);
            let old = (i > 0).then(|| format!("v{}", i - 1));
            let seen = if i % 2 == 0 {
                old
            } else {
                Some(format!("v{i}"))
            };
            at(&mut h, writer, w(&format!("v{i}")));
            at(&mut h, reader, r());
            at(&mut h, reader, got(seen.as_deref()));
            at(&mut h, writer, ok());
        }
        assert_eq!(first_violation(h.clone()), Ok(None));
        at(&mut h, 1, r());
        at(&mut h, 1, got(Some("v7")));
        assert_eq!(first_violation(h), Ok(Some(60_002)));
    }

    fn ev_on(seq: u64, thread: (usize, u32), step: Step) -> Event {
        Event {
            key: 0,
            seq,
            thread,
            step,
        }
    }

    #[test]
    fn unknown_writes_never_read_cost_nothing_and_one_that_was_read_counts() {
        // 40 writes of unknown outcome, each on its own logical thread, then 400 events of
        // sequential traffic: kept in, the search would try each at every position (it ran for minutes).
        let mut h: Vec<Event> = (0..40)
            .map(|i| {
                ev_on(
                    i,
                    (1, i as u32),
                    Step::Pending(RegisterOp::Write(Some(format!("u{i}")))),
                )
            })
            .collect();
        for i in 0..100u64 {
            let at = 100 + 4 * i;
            h.push(ev(at, 0, w(&format!("v{i}"))));
            h.push(ev(at + 1, 0, ok()));
            h.push(ev(at + 2, 0, r()));
            h.push(ev(at + 3, 0, got(Some(&format!("v{i}")))));
        }
        assert_eq!(first_violation(h.clone()), Ok(None));
        // An unknown write whose value was read did take effect and is checked: reading it
        // before it was invoked is a violation.
        let mut early = h.clone();
        early.push(ev(1000, 2, r()));
        early.push(ev(1001, 2, got(Some("late"))));
        early.push(ev_on(
            1002,
            (3, 0),
            Step::Pending(RegisterOp::Write(Some("late".into()))),
        ));
        assert_eq!(first_violation(early).map(|v| v.is_some()), Ok(true));
        h.push(ev_on(
            1000,
            (3, 0),
            Step::Pending(RegisterOp::Write(Some("late".into()))),
        ));
        h.push(ev(1001, 2, r()));
        h.push(ev(1002, 2, got(Some("late"))));
        assert_eq!(first_violation(h), Ok(None));
    }
}
