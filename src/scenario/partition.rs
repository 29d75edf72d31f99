//! The report's network partition: servers 0-2 on the first computer, 3-4 on the second, the
//! leader first on one side, then on the other. [`two_hosts`] runs it as the assignment does,
//! per-process servers started by the partition scripts on two network namespaces with the cable
//! pulled; [`in_process`] runs it inside one process with every link between the groups cut,
//! as the lab does.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use super::{ALL, Client, Evidence, Timeline, WAIT, exchange, settled, trim};
use crate::cluster::{Cluster, loopback_configs};
use crate::config::Timing;
use crate::harness::netns::{FIRST, Net, SECOND, Servers};

/// How long the partition lasts before the write attempts: several election rounds.
const CUT_FOR: Duration = Duration::from_secs(3);

pub(super) fn two_hosts(
    leader_on_second: bool,
    bin: &Path,
    scripts: &Path,
    ev: &mut Evidence,
) -> Result<()> {
    let net = Net::create(if leader_on_second { 'B' } else { 'A' })
        .map_err(|why| anyhow!("two network namespaces are needed (run as root): {why}"))?;
    let mut servers = Servers::new(bin, scripts)?;
    for s in ALL {
        servers.start(&net, s)?;
    }
    let statuses = |ids: &[usize]| {
        let mut out = String::new();
        for s in ids {
            let line = net
                .status(*s)
                .map_or("(not answering: down)".into(), |st| trim(&st));
            let _ = writeln!(out, "server {s}: {line}");
        }
        out
    };
    let watch = |timeline: &mut Timeline, until: &dyn Fn(&[Option<_>]) -> bool, max: Duration| {
        while timeline.start.elapsed() < max {
            let seen: Vec<_> = ALL.iter().map(|s| net.status(*s)).collect();
            for (s, st) in seen.iter().enumerate() {
                timeline.observe(s, st.as_ref());
            }
            if until(&seen) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    let call = |s: usize, method: &str, path: &str, body: Option<serde_json::Value>| {
        let text = body.as_ref().map(|b| b.to_string());
        let (code, answer) = net.exchange(s, method, path, text.as_deref());
        let to = format!("server {s} ({})", net.server(s).1);
        exchange(
            method,
            path,
            body.as_ref(),
            &to,
            &format!("{code}\n{answer}"),
        )
    };

    // The leader is wherever the first election put it; move it by crashing leaders on the wrong
    // side and restarting them (bounded).
    let wanted: &[usize] = if leader_on_second { &SECOND } else { &FIRST };
    let mut tries = 0;
    let leader = loop {
        let mut timeline = servers_timeline();
        if !watch(&mut timeline, &|seen| settled(seen), WAIT) {
            bail!("the five servers did not settle on a leader within {WAIT:?}");
        }
        let l = net.leader(&ALL).ok_or_else(|| anyhow!("no leader"))?;
        if wanted.contains(&l) {
            break l;
        }
        tries += 1;
        if tries > 20 {
            bail!("the leader never landed on the wanted side");
        }
        servers.kill(l);
        let deadline = Instant::now() + WAIT;
        while net.leader(&ALL).is_none_or(|n| n == l) {
            if Instant::now() > deadline {
                bail!("no new leader after server {l} was killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        servers.start(&net, l)?;
    };
    let side = if leader_on_second { "second" } else { "first" };
    ev.step(&format!(
        "Before the partition: leader on the {side} computer"
    ));
    ev.note(&format!(
        "Servers 0, 1, 2 run in network namespace {} ({}), 3 and 4 in {} ({}), each started by \
         `bin/partition/create_server_partitionN.sh {} {}`. Server {leader} leads{}.",
        net.ns[0],
        net.ip[0],
        net.ns[1],
        net.ip[1],
        net.ip[0],
        net.ip[1],
        if tries > 0 {
            format!(" (after {tries} leader(s) on the other side were killed and restarted)")
        } else {
            String::new()
        }
    ));
    ev.block(
        "A write before the partition:",
        &call(
            leader,
            "POST",
            "/keys/p",
            Some(json!({"type": "APPEND", "value": "before"})),
        ),
    );
    watch(&mut servers_timeline(), &|seen| settled(seen), WAIT);
    ev.block("Statuses:", &statuses(&ALL));

    ev.step("During the partition");
    let mut timeline = servers_timeline();
    net.cable(false).map_err(anyhow::Error::msg)?;
    ev.note("The cable is unplugged: both ends of the link between the computers go down.");
    watch(&mut timeline, &|_| false, CUT_FOR);
    ev.block(
        "Timeline from the cut (each line: a server's role, term, vote or leader changed):",
        &timeline.text,
    );
    ev.block(
        &format!("Statuses {} s after the cut:", CUT_FOR.as_secs()),
        &statuses(&ALL),
    );
    for s in [0, 3] {
        let value = format!("via-{s}");
        let body = json!({"type": "APPEND", "value": value});
        ev.block("", &call(s, "POST", "/keys/p", Some(body)));
    }
    ev.block(
        "Statuses after one write attempt on each side:",
        &statuses(&ALL),
    );

    ev.step("After reconnecting");
    let mut timeline = servers_timeline();
    net.cable(true).map_err(anyhow::Error::msg)?;
    if !watch(&mut timeline, &|seen| settled(seen), WAIT) {
        bail!("the five servers did not settle after the cable was plugged back");
    }
    ev.block("Timeline from the reconnection:", &timeline.text);
    ev.block("Statuses:", &statuses(&ALL));
    ev.block(
        "GET p on the second computer:",
        &call(4, "GET", "/keys/p", None),
    );
    Ok(())
}

/// A timeline that names the assignment's servers (0-4), as the scripts number them.
fn servers_timeline() -> Timeline {
    Timeline {
        who: "server",
        ..Timeline::new(5)
    }
}

pub(super) async fn in_process(
    leader_on_second: bool,
    raft: &[u16],
    http: &[u16],
    dir: &Path,
    ev: &mut Evidence,
) -> Result<()> {
    let configs = loopback_configs(raft, http, dir, Timing::default());
    let mut cluster = Cluster::start(configs).await?;
    let c = Client {
        nodes: crate::harness::Nodes::client(&cluster, &reqwest::Client::new()),
    };
    let result = in_process_steps(leader_on_second, &c, &cluster, ev).await;
    cluster.shutdown().await;
    result
}

async fn in_process_steps(
    leader_on_second: bool,
    c: &Client,
    cluster: &Cluster,
    ev: &mut Evidence,
) -> Result<()> {
    let (first, second) = (vec![0u64, 1, 2], vec![3u64, 4]);
    let leader = c.leader(&ALL, 0).await?;
    let wanted = if leader_on_second { 3 } else { 0 };
    if (leader >= 3) != leader_on_second {
        cluster.transfer(wanted).await?;
        c.leader(&[wanted], 0).await?;
    }
    c.watch_until_settled(&ALL, &mut Timeline::new(5)).await?;
    let side = if leader_on_second { "second" } else { "first" };
    ev.step(&format!(
        "Before the partition: leader on the {side} computer"
    ));
    ev.note("Servers 0, 1, 2 play the first computer, 3 and 4 the second, in one process.");
    ev.block("Statuses:", &c.statuses(&ALL).await);
    let mut timeline = Timeline::new(5);
    cluster.partition(&[first, second])?;
    ev.step("During the partition");
    ev.note("Every link between {0,1,2} and {3,4} is cut, both ways.");
    c.watch_for(&ALL, &mut timeline, CUT_FOR).await;
    ev.block("Timeline from the cut:", &timeline.text);
    ev.block(
        &format!("Statuses {} s after the cut:", CUT_FOR.as_secs()),
        &c.statuses(&ALL).await,
    );
    for id in [0, 3] {
        let body = json!({"type": "APPEND", "value": format!("via-{id}")});
        ev.block("", &c.call(id, "POST", "/keys/p", Some(body)).await);
    }
    ev.block(
        "Statuses after one write attempt on each side:",
        &c.statuses(&ALL).await,
    );
    let mut timeline = Timeline::new(5);
    cluster.heal().await;
    ev.step("After reconnecting");
    c.watch_until_settled(&ALL, &mut timeline).await?;
    ev.block("Timeline from the reconnection:", &timeline.text);
    ev.block("Statuses:", &c.statuses(&ALL).await);
    ev.block(
        "GET p on the second computer:",
        &c.call(4, "GET", "/keys/p", None).await,
    );
    Ok(())
}
