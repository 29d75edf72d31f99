//! `--preload`: fills the store with this many bytes of values before the measured run, so the
//! figures are those of a store that holds data, not of an empty one (issue 18's cost curves).
//! Each value is written once, to a key of its own (`p0`, `p1`, …), through the leader, by as
//! many writers as the run has connections (at most 64); the fill is timed and reported apart.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::system::Write;
use super::{Config, http};

/// Attempts per write before the fill gives up.
const MAX_ATTEMPTS: u64 = 20;
/// A write that takes longer than this during the fill ends it with an error.
const PRELOAD_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize)]
pub struct PreloadReport {
    /// Bytes of values written (keys and encoding not counted).
    pub bytes: u64,
    pub writes: u64,
    pub value_bytes: usize,
    pub seconds: f64,
    pub mb_per_sec: f64,
    /// Writes sent again after a 503 or a transport error.
    pub retried: u64,
}

impl std::fmt::Display for PreloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "preloaded {:.0} MB as {} writes of {} bytes in {:.1} s ({:.1} MB/s, {} retried)",
            self.bytes as f64 / 1e6,
            self.writes,
            self.value_bytes,
            self.seconds,
            self.mb_per_sec,
            self.retried
        )
    }
}

/// Writes `config.preload` bytes of `config.value_bytes`-byte values through `endpoint`.
pub async fn fill(config: &Config, endpoint: &str) -> anyhow::Result<Option<PreloadReport>> {
    if config.preload == 0 {
        return Ok(None);
    }
    let value_bytes = config.value_bytes.max(1);
    let writes = config.preload.div_ceil(value_bytes as u64);
    let value = "p".repeat(value_bytes);
    let writers = config.connections.clamp(1, 64) as u64;
    let started = Instant::now();
    let writer = |first: u64| {
        let value = &value;
        async move {
            let mut conn = http::Conn::new(config.trust.clone());
            let mut retried = 0;
            for i in (first..writes).step_by(writers as usize) {
                let call = config.system.write(&format!("p{i}"), Write::Put(value))?;
                // A PUT is idempotent: one refused as busy (503: etcd's "too many requests", a
                // leader change) is sent again after a pause, a bounded number of times.
                for attempt in 1.. {
                    let why = match conn.send(endpoint, &call, PRELOAD_TIMEOUT).await {
                        Ok(200..=299) => break,
                        Ok(503) => "HTTP 503".to_string(),
                        Ok(status) => anyhow::bail!(
                            "preloading p{i} on {endpoint}: HTTP {status} {}",
                            conn.refusal()
                        ),
                        Err(failure) => failure.kind().to_string(),
                    };
                    if attempt > MAX_ATTEMPTS {
                        anyhow::bail!("preloading p{i} on {endpoint}: {why}, {MAX_ATTEMPTS} times");
                    }
                    retried += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt.min(10))).await;
                }
            }
            anyhow::Ok(retried)
        }
    };
    let retried = futures::future::try_join_all((0..writers.min(writes)).map(writer))
        .await?
        .into_iter()
        .sum();
    let seconds = started.elapsed().as_secs_f64();
    let bytes = writes * value_bytes as u64;
    Ok(Some(PreloadReport {
        bytes,
        writes,
        value_bytes,
        seconds,
        mb_per_sec: bytes as f64 / 1e6 / seconds,
        retried,
    }))
}
