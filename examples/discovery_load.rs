//! Load generator for `scripts/bench-discovery.sh`: keeps CONCURRENCY keep-alive HTTPS connections busy
//! with GET requests to one discovery-endpoint URL for SECONDS, then prints requests per second and the
//! p50/p99 latency. Usage: discovery_load <url> <ca.pem> <concurrency> <seconds> <expected status>

use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 6,
        "usage: discovery_load <url> <ca.pem> <concurrency> <seconds> <expected status>"
    );
    let url = args[1].clone();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&args[2])?)?;
    let concurrency: usize = args[3].parse()?;
    let seconds: u64 = args[4].parse()?;
    let expected: u16 = args[5].parse()?;
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .http1_only()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut unexpected = 0u64;
            while Instant::now() < deadline {
                let start = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        if status != expected {
                            unexpected += 1;
                        }
                    }
                    Err(_) => unexpected += 1,
                }
                latencies.push(start.elapsed());
            }
            (latencies, unexpected)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut unexpected = 0;
    for t in tasks {
        let (l, u) = t.await?;
        all.extend(l);
        unexpected += u;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} requests in {elapsed:.1}s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, unexpected answers {unexpected}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
