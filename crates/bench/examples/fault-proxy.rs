//! An HTTP fault proxy in front of an S3 API server, for benchmarks: every
//! request waits `--delay-ms` before it is forwarded.
//!
//! ```text
//! cargo run --release -p taskq-bench --example fault-proxy -- \
//!     --listen 127.0.0.1:9101 --upstream 127.0.0.1:9100 --delay-ms 20
//! ```
//!
//! It runs until killed.

use std::net::SocketAddr;
use std::time::Duration;

use taskq_bench::faultproxy::FaultProxy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut upstream: Option<SocketAddr> = None;
    let mut delay_ms = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value.parse()?,
            "--upstream" => upstream = Some(value.parse()?),
            "--delay-ms" => delay_ms = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let upstream = upstream.ok_or("--upstream HOST:PORT is needed")?;
    let proxy = FaultProxy::start_on(listen, upstream)?;
    proxy.set_delay(Duration::from_millis(delay_ms));
    println!("{} -> {upstream}, {delay_ms} ms per request", proxy.url());
    loop {
        std::thread::park();
    }
}
