//! The assignment's two-computer partition, on one machine: two network namespaces joined by a
//! veth pair, servers 0-2 started by `bin/partition/create_server_partitionN.sh IP1 IP2` in the
//! first, 3-4 in the second. Cutting the link must leave the majority acknowledging writes and the
//! minority acknowledging none; restoring it must bring every node to the same state with every
//! acknowledged write and none of the refused ones. Run with the leader first on the majority's
//! side, then on the minority's. Needs root and `ip netns`; without them it says why and skips.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raftkv::raft::status::{Status, leader_of};

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const WAIT: Duration = Duration::from_secs(30);

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces ("computers") and the veth cable between them; removed on drop.
struct Net {
    ns: [String; 2],
    ip: [String; 2],
    dev: [String; 2],
}

impl Net {
    /// `case` tells apart the namespaces of tests running at the same time.
    fn create(case: char) -> Result<Net, String> {
        let tag = format!("rkv{}{case}", std::process::id() % 100_000);
        let net = Net {
            ns: [format!("{tag}a"), format!("{tag}b")],
            ip: ["10.77.0.1".into(), "10.77.0.2".into()],
            dev: [format!("{tag}a"), format!("{tag}b")],
        };
        for ns in &net.ns {
            sh(&["ip", "netns", "add", ns])?;
        }
        let (a, b) = (&net.dev[0], &net.dev[1]);
        sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])?;
        for i in 0..2 {
            let (ns, dev) = (&net.ns[i], &net.dev[i]);
            sh(&["ip", "link", "set", dev, "netns", ns])?;
            let cidr = format!("{}/24", net.ip[i]);
            sh(&["ip", "-n", ns, "addr", "add", &cidr, "dev", dev])?;
            sh(&["ip", "-n", ns, "link", "set", dev, "up"])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
            // Entering a namespace needs more privileges than creating one (a mount namespace).
            sh(&["ip", "netns", "exec", ns, "true"])?;
        }
        Ok(net)
    }

    /// Unplugs (or plugs back) the cable: both ends go down, as when a switch port dies.
    fn cable(&self, up: bool) {
        for i in 0..2 {
            let state = if up { "up" } else { "down" };
            sh(&["ip", "-n", &self.ns[i], "link", "set", &self.dev[i], state]).unwrap();
        }
    }

    /// The namespace (computer) of server `s`, and its HTTP address.
    fn server(&self, s: usize) -> (&str, String) {
        let side = usize::from(s >= 3);
        (&self.ns[side], format!("{}:{}", self.ip[side], 8080 + s))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

/// An HTTP request from inside server `s`'s namespace (curl); returns (status, body).
fn http(net: &Net, s: usize, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let (ns, addr) = net.server(s);
    let url = format!("http://{addr}{path}");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "--max-time",
        "8",
        "-X",
        method,
    ]);
    cmd.args(["-w", "\n%{http_code}", &url]);
    if let Some(body) = body {
        cmd.args(["-H", "content-type: application/json", "-d", body]);
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn status(net: &Net, s: usize) -> Option<Status> {
    let (code, body) = http(net, s, "GET", "/admin/status", None);
    (code == 200)
        .then(|| serde_json::from_str(&body).ok())
        .flatten()
}

fn append(net: &Net, s: usize, key: &str, value: &str) -> u16 {
    let body = serde_json::json!({"type": "APPEND", "value": value}).to_string();
    http(net, s, "POST", &format!("/keys/{key}"), Some(&body)).0
}

/// Polls `probe` until it returns `Some`, for at most `WAIT`.
fn wait<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The server leading with a quorum, as seen from `among`.
fn leader(net: &Net, among: &[usize]) -> Option<usize> {
    // Server numbers are the scripts' (0-4), node ids come from the sorted addresses: keep both.
    let statuses: Vec<(usize, Status)> = among
        .iter()
        .filter_map(|s| Some((*s, status(net, *s)?)))
        .collect();
    let leader = leader_of(statuses.iter().map(|(_, st)| st))?;
    statuses
        .iter()
        .find(|(_, st)| st.id == leader.id)
        .map(|(s, _)| *s)
}

struct Servers {
    children: Vec<Option<Child>>,
    data: tempfile::TempDir,
}

impl Servers {
    fn start(&mut self, net: &Net, s: usize) {
        let (ns, _) = net.server(s);
        let script = format!("{ROOT}/bin/partition/create_server_partition{s}.sh");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "bash", &script, &net.ip[0], &net.ip[1]])
            .env("RAFTKV_BIN", BIN)
            .env("RAFTKV_DATA", self.data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a server");
        self.children[s] = Some(child);
    }

    fn kill(&mut self, s: usize) {
        if let Some(mut child) = self.children[s].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for s in 0..self.children.len() {
            self.kill(s);
        }
    }
}

fn partition_case(leader_on_minority: bool) {
    let net = match Net::create(if leader_on_minority { 'm' } else { 'j' }) {
        Ok(net) => net,
        Err(why) => {
            println!("SKIPPED: network namespaces are not available here ({why})");
            return;
        }
    };
    if sh(&["ip", "netns", "exec", &net.ns[0], "curl", "--version"]).is_err() {
        println!("SKIPPED: curl is needed to talk to the namespaces");
        return;
    }
    let mut servers = Servers {
        children: (0..5).map(|_| None).collect(),
        data: tempfile::tempdir().unwrap(),
    };
    for s in 0..5 {
        servers.start(&net, s);
    }
    let all = [0, 1, 2, 3, 4];
    let (first, second) = ([0usize, 1, 2], [3usize, 4]);
    // Move leadership to the wanted side by crashing leaders on the other side (bounded).
    let wanted: &[usize] = if leader_on_minority { &second } else { &first };
    let mut tries = 0;
    let first_leader = loop {
        let l = wait("a leader with a quorum", || leader(&net, &all));
        if wanted.contains(&l) {
            break l;
        }
        tries += 1;
        assert!(tries <= 20, "the leader never landed on the wanted side");
        servers.kill(l);
        wait("a new leader", || leader(&net, &all).filter(|n| *n != l));
        servers.start(&net, l);
    };
    wait("every server follows that leader", || {
        all.iter()
            .all(|s| status(&net, *s).is_some_and(|st| st.leader_id == Some(first_leader as u64)))
            .then_some(())
    });
    let mut acked = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let v = format!("before-{i}");
        assert_eq!(append(&net, *s, "k", &v), 204);
        acked.push(v);
    }

    net.cable(false);
    // The majority (0-2) keeps, or elects, a leader and acknowledges writes.
    let majority_leader = wait("the majority leads", || leader(&net, &first));
    if !leader_on_minority {
        assert_eq!(
            majority_leader, first_leader,
            "a majority leader keeps leading"
        );
    }
    for s in first {
        let v = format!("majority-{s}");
        assert_eq!(
            append(&net, s, "k", &v),
            204,
            "server {s} on the majority side"
        );
        acked.push(v);
    }
    // The minority (3-4) acknowledges nothing, whoever led before.
    let mut refused = Vec::new();
    for s in second {
        let v = format!("minority-{s}");
        let code = append(&net, s, "k", &v);
        assert_ne!(
            code, 204,
            "server {s} on the minority side acknowledged a write"
        );
        refused.push(v);
    }

    net.cable(true);
    // Every server converges on the majority's history.
    let expected = wait("all five servers hold the same list", || {
        let lists: Vec<Vec<String>> = all
            .iter()
            .map(|s| {
                let (code, body) = http(&net, *s, "GET", "/keys/k?consistency=local", None);
                (code == 200)
                    .then(|| serde_json::from_str(&body).ok())
                    .flatten()
            })
            .collect::<Option<_>>()?;
        let first = lists[0].clone();
        (lists.iter().all(|l| *l == first) && acked.iter().all(|v| first.contains(v)))
            .then_some(first)
    });
    for v in &refused {
        // Even an "outcome unknown" here cannot commit: the minority never had a quorum, and
        // the new leader's entries of a higher term overwrite whatever the old one appended.
        assert!(
            !expected.contains(v),
            "refused write {v} appeared: {expected:?}"
        );
    }
    let (code, body) = http(&net, 4, "GET", "/keys/k", None);
    assert_eq!(
        code, 200,
        "a linearizable read on a former minority server: {body}"
    );
}

#[test]
fn partition_with_the_leader_on_the_majority_side() {
    partition_case(false);
}

#[test]
fn partition_with_the_leader_on_the_minority_side() {
    partition_case(true);
}
