//! Disk faults on one node's Raft log, checked on a one-node cluster (so nothing can be re-fetched
//! from a peer: what the node serves after a restart is what its own disk kept).
//! - A torn tail (a record cut part-way by a crash, or zeros written by the file system after
//!   it) is cut at restart and every acknowledged write is still there.
//! - Damage inside fsynced data (a flipped byte; the log cut short, at a record boundary or
//!   inside a record) makes the node refuse to start with a reason, never serve without it.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestCluster, wait_until};
use rand::Rng;

const WAIT: Duration = Duration::from_secs(20);
const ACKED: usize = 20;

/// The newest chunk file of the node's WAL (the one a crash can tear).
fn tail_chunk(data: &Path) -> PathBuf {
    let mut chunks: Vec<PathBuf> = fs::read_dir(data.join("raft-log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    chunks.sort();
    chunks.pop().expect("a WAL chunk")
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn restore(image: &Path, data: &Path) {
    fs::remove_dir_all(data).unwrap();
    copy_dir(image, data);
}

fn watermark(data: &Path) -> Option<u64> {
    let bytes = fs::read(data.join("durable.json")).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?["index"].as_u64()
}

/// A node image after `ACKED` acknowledged appends and one more, "torn", acknowledged just after
/// the watermark covered the others and killed before it could cover it: so the bytes of its
/// record play the part of a write the crash interrupted. Returns the cluster (node 0 killed),
/// the image, the tail chunk's length after each acknowledgement, and its length at the kill.
struct Image {
    c: TestCluster,
    image: tempfile::TempDir,
    data: PathBuf,
    tail: PathBuf,
    after: Vec<u64>,
    end: u64,
}

async fn image() -> Image {
    let mut c = TestCluster::start(1, |_| {}).await;
    c.leader(WAIT).await;
    let data = c.config(0).data_dir.clone();
    let mut after = Vec::new();
    for i in 0..ACKED {
        assert_eq!(c.append(0, "k", &format!("v{i}")).await, 204);
        after.push(len(&tail_chunk(&data)));
    }
    let last = c.status(0).await.unwrap().last_log_index;
    wait_until(
        WAIT,
        "the watermark covers the acknowledged writes",
        || async { (watermark(&data) == last).then_some(()) },
    )
    .await;
    // The watermark is renewed once a second; this write and the kill take milliseconds.
    assert_eq!(c.append(0, "k", "torn").await, 204);
    let tail = tail_chunk(&data);
    let end = len(&tail);
    c.kill(0).await;
    assert_eq!(
        watermark(&data),
        last,
        "the watermark moved past the acknowledged writes before the kill"
    );
    let image = tempfile::tempdir().unwrap();
    copy_dir(&data, image.path());
    Image {
        c,
        image,
        data,
        tail,
        after,
        end,
    }
}

fn expected() -> Vec<String> {
    (0..ACKED).map(|i| format!("v{i}")).collect()
}

impl Image {
    /// Restarts the node on the image as modified by `damage`; Err is its refusal to start.
    async fn start_with(&mut self, damage: impl FnOnce(&Path)) -> Result<Vec<String>, String> {
        restore(self.image.path(), &self.data);
        damage(&self.tail);
        self.c.cluster.restart(0).await.map_err(|e| e.to_string())?;
        let list = wait_until(WAIT, "the node serves k again", || async {
            match self.c.get(0, "k", "").await {
                (200, Some(list)) => Some(list),
                _ => None,
            }
        })
        .await;
        self.c.kill(0).await;
        Ok(list)
    }
}

fn truncate(at: u64) -> impl FnOnce(&Path) {
    move |tail| {
        OpenOptions::new()
            .write(true)
            .open(tail)
            .unwrap()
            .set_len(at)
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_cut_at_restart_and_every_acknowledged_write_survives() {
    let mut img = image().await;
    let (from, to) = (img.after[ACKED - 1], img.end);
    assert!(from < to, "the torn write left no bytes ({from}..{to})");
    let mut rng = rand::rng();
    let mut cuts = vec![from, to - 1];
    cuts.extend((0..14).map(|_| rng.random_range(from..to)));
    for at in cuts {
        let list = img.start_with(truncate(at)).await.unwrap_or_else(|e| {
            panic!("cut at byte {at} ({from}..{to} is the torn write): refused to start: {e}")
        });
        let kept = list.len() == ACKED || (list.len() == ACKED + 1 && list[ACKED] == "torn");
        assert!(
            kept && list[..ACKED] == expected()[..],
            "cut at byte {at}: {list:?}"
        );
    }
    // ext4 in data=writeback mode may leave zeros after the last record instead.
    let zeros = |tail: &Path| {
        let mut f = OpenOptions::new().append(true).open(tail).unwrap();
        f.write_all(&[0u8; 4096]).unwrap();
    };
    let list = img.start_with(zeros).await.expect("zeros after the tail");
    assert_eq!(list.len(), ACKED + 1, "{list:?}");
    img.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_inside_fsynced_data_makes_the_node_refuse_to_start_with_a_reason() {
    let mut img = image().await;
    // The record of the tenth write lies between these offsets; it was fsynced and acknowledged.
    let (a, b) = (img.after[8], img.after[9]);
    let flip = move |tail: &Path| {
        let mut bytes = fs::read(tail).unwrap();
        bytes[((a + b) / 2) as usize] ^= 0x5a;
        fs::write(tail, bytes).unwrap();
    };
    for (what, damage) in [
        ("a flipped byte", Box::new(flip) as Box<dyn FnOnce(&Path)>),
        ("cut at a record boundary", Box::new(truncate(b))),
        ("cut inside a record", Box::new(truncate(a + 3))),
    ] {
        let refused = img.start_with(damage).await;
        let why = refused.expect_err(&format!("{what}: the node started"));
        println!("{what}: {why}");
        assert!(
            why.contains("refusing to start"),
            "{what}: the refusal does not say so: {why}"
        );
    }
    // The undamaged image still starts, with everything.
    let list = img.start_with(|_| {}).await.expect("the intact image");
    assert_eq!(list.len(), ACKED + 1);
    img.c.shutdown().await;
}

/// A tmpfs of a given size, made (and unmounted on drop) by the test; needs root.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(SmallDisk { dir })
    }

    /// Takes `bytes` of the disk with a file the test deletes to free them again.
    fn ballast(&self, bytes: u64) -> PathBuf {
        let path = self.dir.path().join("ballast");
        fs::write(&path, vec![7u8; bytes as usize]).unwrap();
        path
    }

    /// The disk, or None after saying why the test is skipped (no root, no tmpfs).
    fn mount_or_skip(size: &str) -> Option<SmallDisk> {
        SmallDisk::mount(size)
            .map_err(|why| println!("SKIPPED: cannot mount a tmpfs here ({why})"))
            .ok()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // A node that just stopped may hold its files a moment longer (its log's flush thread).
        let umount = |lazy: bool| {
            let mut cmd = std::process::Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        for _ in 0..30 {
            if umount(false) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        umount(true);
    }
}

/// A node whose disk fills up refuses new writes with 503 and the reason, keeps running, and
/// takes writes again once space is freed; nothing it acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_a_reason_and_takes_them_again_once_freed() {
    let Some(disk) = SmallDisk::mount_or_skip("48m") else {
        return;
    };
    let data = disk.dir.path().join("node0");
    let ballast = disk.ballast(16 << 20);
    let mut c = TestCluster::start(1, |config| {
        config.data_dir = data.clone();
        config.disk_reserve = 8 << 20;
    })
    .await;
    c.leader(WAIT).await;
    let value = "x".repeat(64 << 10);
    let mut acked = 0;
    let refusal = loop {
        assert!(acked < 1000, "48 MiB never filled up");
        let (code, body) = c
            .post(
                0,
                &format!("k{acked}"),
                &serde_json::json!({"type": "PUT", "value": [value]}).to_string(),
            )
            .await;
        match code {
            204 => acked += 1,
            _ => break (code, body),
        }
    };
    println!("refused after {acked} writes of 64 KiB: {refusal:?}");
    assert_eq!(refusal.0, 503, "{refusal:?}");
    assert!(refusal.1.contains("reserve"), "{refusal:?}");
    let status = c.status(0).await.expect("the node still answers");
    assert!(status.fatal.is_none(), "{status:?}");
    fs::remove_file(&ballast).unwrap();
    wait_until(WAIT, "writes are taken again", || async {
        let body = serde_json::json!({"type": "PUT", "value": ["after"]}).to_string();
        (c.post(0, "after", &body).await.0 == 204).then_some(())
    })
    .await;
    for i in 0..acked {
        let (code, list) = c.get(0, &format!("k{i}"), "").await;
        assert_eq!(
            (code, list.map(|l| l[0].len())),
            (200, Some(64 << 10)),
            "k{i}"
        );
    }
    c.kill(0).await;
    c.cluster
        .restart(0)
        .await
        .expect("restarts from the once-full disk");
    c.shutdown().await;
    drop(disk);
}

/// A snapshot that cannot be written (the disk is full) leaves the previous one whole: after
/// space is freed the node restarts from it and its log, with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_write_leaves_the_previous_snapshot_usable() {
    let Some(disk) = SmallDisk::mount_or_skip("40m") else {
        return;
    };
    let data = disk.dir.path().join("node0");
    let mut c = TestCluster::start(1, |config| {
        config.data_dir = data.clone();
        config.snapshot_every = 50;
        // No reserve: this test wants the full disk to reach the snapshot.
        config.disk_reserve = 0;
    })
    .await;
    c.leader(WAIT).await;
    let value = "y".repeat(64 << 10);
    let put = |i: usize| {
        let body = serde_json::json!({"type": "PUT", "value": [format!("{i}{value}")]});
        (format!("k{i}"), body.to_string())
    };
    for i in 0..60 {
        let (key, body) = put(i);
        assert_eq!(c.post(0, &key, &body).await.0, 204);
    }
    let snapshot = data.join("snapshot").join("snapshot.bin");
    let first = wait_until(WAIT, "a first snapshot", || async {
        let s = c.status(0).await?;
        s.snapshot_index?;
        fs::read(&snapshot).ok()
    })
    .await;
    // Leave room for 40 more log entries (about 2.6 MiB) but not for a snapshot of 100 values.
    let free = fs2::available_space(disk.dir.path()).unwrap();
    let ballast = disk.ballast(free - (4 << 20));
    let mut acked = 60;
    for i in 60..110 {
        let (key, body) = put(i);
        if c.post(0, &key, &body).await.0 != 204 {
            break;
        }
        acked = i + 1;
    }
    let status = c.status(0).await;
    println!(
        "acknowledged {acked}; then: {:?}",
        status.as_ref().map(|s| (&s.fatal, s.snapshot_index))
    );
    assert!(acked > 60, "no write fitted after the ballast");
    assert_eq!(
        fs::read(&snapshot).unwrap(),
        first,
        "snapshot.bin changed although no new snapshot could be written"
    );
    c.kill(0).await;
    fs::remove_file(&ballast).unwrap();
    c.cluster
        .restart(0)
        .await
        .expect("restarts on the previous snapshot");
    for i in 0..acked {
        let (key, _) = put(i);
        let (code, list) = c.get(0, &key, "").await;
        assert_eq!(code, 200, "{key}");
        assert!(list.unwrap()[0].starts_with(&i.to_string()), "{key}");
    }
    c.shutdown().await;
    drop(disk);
}

/// A follower whose disk fills refuses its leader's entries as an unreachable follower would,
/// instead of stopping on a failed write: the majority goes on committing, the follower keeps
/// following (no election), and once space is freed it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_full_disk_keeps_following_and_catches_up_once_freed() {
    let Some(disk) = SmallDisk::mount_or_skip("40m") else {
        return;
    };
    let small = disk.dir.path().join("node1");
    let ballast = disk.ballast(16 << 20);
    let c = TestCluster::start(3, |config| {
        if config.data_dir.ends_with("node1") {
            config.data_dir = small.clone();
        }
        config.disk_reserve = 8 << 20;
    })
    .await;
    let (mut leader, term) = c.leader(WAIT).await;
    if leader == 1 {
        c.cluster.transfer(0).await.unwrap();
        leader = wait_until(WAIT, "n0 leads", || c.leader_among(&[0, 2], term)).await;
    }
    let value = "z".repeat(64 << 10);
    let body = serde_json::json!({"type": "PUT", "value": [value]}).to_string();
    let mut acked = 0;
    // Until node 1's disk is below its reserve, then 10 MiB more (more than the reserve holds),
    // all committed by the other two.
    let mut past = None;
    while past.is_none_or(|p| acked < p + 160) {
        assert!(acked < 2000, "node 1's disk never filled");
        assert_eq!(c.post(leader, &format!("k{acked}"), &body).await.0, 204);
        acked += 1;
        if past.is_none() && fs2::available_space(disk.dir.path()).unwrap() < 8 << 20 {
            past = Some(acked);
        }
    }
    let follower = c.status(1).await.expect("node 1 answers");
    let head = c.status(leader).await.unwrap();
    println!(
        "acknowledged {acked}; node 1 at {:?}, the leader at {:?}",
        follower.last_log_index, head.last_log_index
    );
    assert!(follower.fatal.is_none(), "{follower:?}");
    assert!(
        follower.last_log_index < head.last_log_index,
        "node 1 kept up"
    );
    assert_eq!(follower.term, head.term, "node 1 started an election");
    fs::remove_file(&ballast).unwrap();
    wait_until(WAIT, "node 1 caught up", || async {
        let s = c.status(1).await?;
        (s.last_applied >= head.last_log_index).then_some(())
    })
    .await;
    let (code, list) = c
        .get(1, &format!("k{}", acked - 1), "?consistency=local")
        .await;
    assert_eq!((code, list.map(|l| l[0].len())), (200, Some(64 << 10)));
    assert_eq!(
        c.status(leader).await.unwrap().term,
        head.term,
        "an election happened"
    );
    c.shutdown().await;
    drop(disk);
}
