//! The assignment's two-computer partition on one machine: two network namespaces ("computers")
//! joined by a veth pair (the cable), servers 0-2 started by
//! `bin/partition/create_server_partitionN.sh IP1 IP2` in the first, 3-4 in the second. The
//! namespaces are reachable only from inside, so every request goes through
//! `ip netns exec NS curl`, as a user on that computer would send it. Needs root and `ip netns`;
//! [`Net::create`] says why when they are missing. Everything is removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::raft::status::{Status, leader_of};

/// The first computer's servers and the second's.
pub const FIRST: [usize; 3] = [0, 1, 2];
pub const SECOND: [usize; 2] = [3, 4];

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

/// Two namespaces and the veth cable between them.
pub struct Net {
    pub ns: [String; 2],
    pub ip: [String; 2],
    dev: [String; 2],
}

impl Net {
    /// `tag` tells apart the namespaces of runs at the same time (one character). Err says why
    /// namespaces cannot be made here (not root, no `ip`, no curl inside).
    pub fn create(tag: char) -> Result<Net, String> {
        let name = format!("rkv{}{tag}", std::process::id() % 100_000);
        let net = Net {
            ns: [format!("{name}a"), format!("{name}b")],
            ip: ["10.77.0.1".into(), "10.77.0.2".into()],
            dev: [format!("{name}a"), format!("{name}b")],
        };
        // From here on, a failure drops `net`, which removes what was made.
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
        sh(&["ip", "netns", "exec", &net.ns[0], "curl", "--version"])
            .map_err(|e| format!("curl is needed to talk to the namespaces ({e})"))?;
        Ok(net)
    }

    /// Unplugs (or plugs back) the cable: both ends go down, as when a switch port dies.
    pub fn cable(&self, up: bool) -> Result<(), String> {
        for i in 0..2 {
            let state = if up { "up" } else { "down" };
            sh(&["ip", "-n", &self.ns[i], "link", "set", &self.dev[i], state])?;
        }
        Ok(())
    }

    /// The namespace (computer) of server `s`, and its HTTP address.
    pub fn server(&self, s: usize) -> (&str, String) {
        let side = usize::from(s >= 3);
        (&self.ns[side], format!("{}:{}", self.ip[side], 8080 + s))
    }

    /// An HTTP request from inside server `s`'s computer; (status, body), status 0 when nothing
    /// answered within 8 s.
    pub fn http(&self, s: usize, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let (line, body) = self.exchange(s, method, path, body);
        let code = line.split_whitespace().next().and_then(|c| c.parse().ok());
        (code.unwrap_or(0), body)
    }

    /// The same request, answered as (status line without the protocol, e.g. "204 No Content",
    /// or "no answer"; body).
    pub fn exchange(
        &self,
        s: usize,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (String, String) {
        let (ns, addr) = self.server(s);
        let url = format!("http://{addr}{path}");
        let mut cmd = Command::new("ip");
        let max = ["-s", "-i", "--max-time", "8", "-X", method];
        cmd.args(["netns", "exec", ns, "curl"]).args(max).arg(&url);
        if let Some(body) = body {
            cmd.args(["-H", "content-type: application/json", "-d", body]);
        }
        let text = cmd
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).to_string())
            .unwrap_or_default();
        // curl -i: the status line, headers, a blank line, the body.
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        let line = head.lines().next().and_then(|l| l.split_once(' '));
        match line {
            Some((_, status)) => (status.trim().to_owned(), body.to_owned()),
            None => ("no answer".into(), String::new()),
        }
    }

    pub fn status(&self, s: usize) -> Option<Status> {
        let (code, body) = self.http(s, "GET", "/admin/status", None);
        (code == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    /// The server leading with a quorum, as seen from `among` (`raft::status::leader_of`).
    /// Server numbers are the scripts' (0-4); node ids come from the sorted addresses.
    pub fn leader(&self, among: &[usize]) -> Option<usize> {
        let statuses: Vec<(usize, Status)> = among
            .iter()
            .filter_map(|s| Some((*s, self.status(*s)?)))
            .collect();
        let leader = leader_of(statuses.iter().map(|(_, st)| st))?;
        statuses
            .iter()
            .find(|(_, st)| st.id == leader.id)
            .map(|(s, _)| *s)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

/// The five servers, each started by its partition script inside its computer; killed on drop.
pub struct Servers {
    children: Vec<Option<Child>>,
    bin: PathBuf,
    scripts: PathBuf,
    data: tempfile::TempDir,
}

impl Servers {
    /// `bin` is the raftkv binary the scripts run; `scripts` the folder of the partition scripts
    /// (`bin/partition` in the repository).
    pub fn new(bin: &Path, scripts: &Path) -> std::io::Result<Servers> {
        Ok(Servers {
            children: (0..5).map(|_| None).collect(),
            bin: bin.into(),
            scripts: scripts.into(),
            data: tempfile::tempdir()?,
        })
    }

    pub fn start(&mut self, net: &Net, s: usize) -> std::io::Result<()> {
        let (ns, _) = net.server(s);
        let script = self.scripts.join(format!("create_server_partition{s}.sh"));
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "bash"])
            .arg(&script)
            .args([&net.ip[0], &net.ip[1]])
            .env("RAFTKV_BIN", &self.bin)
            .env("RAFTKV_DATA", self.data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.children[s] = Some(child);
        Ok(())
    }

    /// Stops server `s` with SIGKILL (its data stays).
    pub fn kill(&mut self, s: usize) {
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
