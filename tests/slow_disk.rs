//! A stepped cluster on a slow disk. The lab (and every golden script) calls a step done when the
//! paused cluster has settled; a candidate sends its vote requests only after its own vote is on
//! disk, and nothing of it shows before, so a settle that only watched for changes returned in
//! the middle of a long fsync and the step's vote requests were missing (tests/golden back-up
//! failed that way in 2 CI runs of 4 after the disk got slower). Here the kernel slows this test
//! process's writes (a cgroup v1 blkio group allowing a few writes per second to the disk under
//! the data), so an fsync outlasts the lab's quiet window, and the step that brings a candidate
//! its pre-vote quorum must still end with its vote requests held.
//!
//! The first fix (the log's writes in flight) was not enough: a candidate records its vote for
//! itself (`raft::ballot`, an atomic write: two fsyncs) before its first vote request leaves,
//! so that one request showed up a whole atomic write after the other three; the ballot's
//! saves now count as writes in flight too.
//!
//! Needs root and the blkio controller at /sys/fs/cgroup/blkio, and the data on a block device;
//! without them it says why and skips. One test in this binary: the throttle applies to the
//! whole process.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use raftkv::cluster::{Cluster, loopback_configs};
use raftkv::observe::{Leg, Rpc};

const BLKIO: &str = "/sys/fs/cgroup/blkio";
/// Writes per second the throttled process may issue: an fsync then takes 200 ms or more.
const WRITES_PER_SECOND: u32 = 5;
/// The lab's quiet window (`lab::engine`): a step ends after this long without a change.
const QUIET: Duration = Duration::from_millis(150);
const BOUND: Duration = Duration::from_secs(20);

/// This process inside a blkio cgroup that throttles its writes to one disk; dropping it moves
/// the process back and removes the group.
struct Throttle {
    group: PathBuf,
}

impl Throttle {
    fn apply(data: &Path, writes_per_second: u32) -> Result<Throttle, String> {
        let root = Path::new(BLKIO);
        if !root.join("blkio.throttle.write_iops_device").exists() {
            return Err(format!("no cgroup v1 blkio controller at {BLKIO}"));
        }
        let disk = whole_disk(data)?;
        let group = root.join(format!("raftkv-slow-disk-{}", std::process::id()));
        fs::create_dir(&group).map_err(|e| format!("cannot create {}: {e}", group.display()))?;
        let throttle = Throttle { group };
        let limit = format!("{disk} {writes_per_second}");
        fs::write(
            throttle.group.join("blkio.throttle.write_iops_device"),
            &limit,
        )
        .map_err(|e| format!("cannot throttle {disk}: {e}"))?;
        fs::write(
            throttle.group.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .map_err(|e| format!("cannot join the throttled group: {e}"))?;
        Ok(throttle)
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        let pid = std::process::id().to_string();
        let back = fs::write(Path::new(BLKIO).join("cgroup.procs"), pid);
        let removed = fs::remove_dir(&self.group);
        if let Err(e) = back.and(removed) {
            eprintln!("cleaning up {}: {e}", self.group.display());
        }
    }
}

/// "MAJOR:MINOR" of the whole disk that holds `path` (blkio throttles disks, not partitions).
fn whole_disk(path: &Path) -> Result<String, String> {
    let dev = fs::metadata(path).map_err(|e| e.to_string())?.dev();
    // Linux's dev_t layout (glibc's gnu_dev_major / gnu_dev_minor).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if !sys.exists() {
        return Err(format!(
            "{} is not on a block device ({major}:{minor})",
            path.display()
        ));
    }
    if sys.join("partition").exists() {
        let parent = fs::read_to_string(sys.join("../dev")).map_err(|e| e.to_string())?;
        return Ok(parent.trim().to_string());
    }
    Ok(format!("{major}:{minor}"))
}

/// Delivers every held request from `from` to one of `to`, or every held reply to `from` from
/// one of `to`, of kind `rpc`; returns how many.
fn deliver(cluster: &Cluster, rpc: Rpc, leg: Leg, pairs: &[(u64, u64)]) -> usize {
    let held = cluster.faults().held;
    let picked: Vec<u64> = held
        .iter()
        .filter(|h| h.rpc == rpc && h.leg == leg && pairs.contains(&(h.from, h.to)))
        .map(|h| h.id)
        .collect();
    for id in &picked {
        cluster.release(*id, true).expect("deliver a held message");
    }
    picked.len()
}

async fn step_done(cluster: &Cluster) {
    assert!(
        cluster.settle(QUIET, BOUND).await,
        "the cluster did not settle within {BOUND:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidates_vote_requests_are_held_by_the_end_of_the_step_however_slow_its_fsync() {
    let dir = tempfile::TempDir::new().unwrap();
    let timing = raftkv::config::Timing {
        pre_vote: true,
        ..common::timing()
    };
    let ports = (common::free_ports(5), common::free_ports(5));
    let configs = loopback_configs(&ports.0, &ports.1, dir.path(), timing);
    let mut cluster = Cluster::start_paused(configs)
        .await
        .expect("cluster starts");
    assert!(
        cluster
            .settle(Duration::from_millis(300), Duration::from_secs(10))
            .await,
        "the paused cluster settles"
    );
    // The founding campaigns' messages are lost, as a script's `(drop all)` does.
    while let Some(id) = cluster.oldest_held() {
        cluster.release(id, false).unwrap();
    }
    step_done(&cluster).await;

    let throttle = match Throttle::apply(dir.path(), WRITES_PER_SECOND) {
        Ok(t) => t,
        Err(why) => {
            println!("SKIPPED: cannot slow this process's disk writes ({why})");
            cluster.shutdown().await;
            return;
        }
    };
    // The throttle's effect, shown rather than assumed: one fsynced write of 4 KiB.
    let probe = dir.path().join("probe");
    let started = Instant::now();
    fs::write(&probe, [0u8; 4096]).unwrap();
    fs::File::open(&probe).unwrap().sync_all().unwrap();
    let fsync = started.elapsed();
    println!("one fsynced 4 KiB write under the throttle: {fsync:?}");
    assert!(
        fsync > QUIET,
        "the throttle must make an fsync outlast the quiet window"
    );

    // n0 times out and asks for pre-votes (nothing to persist); n1 and n2 grant them.
    cluster.time_out(0).await.expect("n0 times out");
    step_done(&cluster).await;
    let asked = deliver(&cluster, Rpc::PreVote, Leg::Request, &[(0, 1), (0, 2)]);
    assert_eq!(asked, 2, "n0's pre-votes to n1 and n2 are held");
    step_done(&cluster).await;
    let granted = deliver(&cluster, Rpc::PreVote, Leg::Reply, &[(1, 0), (2, 0)]);
    assert_eq!(granted, 2, "n1's and n2's pre-vote replies are held");
    // With its own vote that is a quorum: n0 becomes a candidate, writes its vote (a slow
    // fsync now), and only then sends its vote requests. The step must include them.
    let began = Instant::now();
    step_done(&cluster).await;
    let took = began.elapsed();
    let mut votes: Vec<(u64, u64)> = cluster
        .faults()
        .held
        .iter()
        .filter(|h| h.rpc == Rpc::Vote && h.leg == Leg::Request)
        .map(|h| (h.from, h.to))
        .collect();
    votes.sort();
    for h in cluster.abandoned() {
        println!(
            "abandoned: {} -> {} {:?} {:?} term {}",
            h.from, h.to, h.rpc, h.leg, h.term
        );
    }
    for h in cluster.faults().held {
        println!(
            "held: {} -> {} {:?} {:?} term {}",
            h.from, h.to, h.rpc, h.leg, h.term
        );
    }
    println!("step after the pre-vote quorum took {took:?}; vote requests held: {votes:?}");
    assert_eq!(
        votes,
        vec![(0, 1), (0, 2), (0, 3), (0, 4)],
        "the step ended before n0's vote requests were sent"
    );
    drop(throttle);
    cluster.shutdown().await;
}
