//! [`FaultProxy`]: an HTTP/1.1 proxy that injects faults between a client and
//! a real server (an S3 API server): a delay before every request, a burst
//! of `503 Slow Down` answers, a connection cut in the middle of a request
//! body. It also records every request it saw (method and path), so a test
//! can count the requests a run made.
//!
//! It is a fault injector, not a mock: every request it lets through is
//! answered by the real server, byte for byte. It understands just enough
//! HTTP to find where each request and response ends (`Content-Length` or
//! `chunked`; no body for `HEAD`, 1xx, 204 and 304), so keep-alive
//! connections work through it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults to inject, and what was seen.
#[derive(Debug, Default)]
struct State {
    delay: Duration,
    fail_next: u32,
    fail_matching: Option<String>,
    cut_body_over: Option<u64>,
    failed: u64,
    cut: u64,
    requests: Vec<(String, String)>,
}

/// A running proxy; it stops accepting when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1` (a free port) in front of `upstream`.
    ///
    /// # Errors
    ///
    /// When the listening socket cannot be made.
    pub fn start(upstream: SocketAddr) -> io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("valid"), upstream)
    }

    /// Starts a proxy listening on `listen` in front of `upstream`.
    ///
    /// # Errors
    ///
    /// When the listening socket cannot be made.
    pub fn start_on(listen: SocketAddr, upstream: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("fault-proxy".into())
                .spawn(move || {
                    for client in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(client) = client else { continue };
                        let state = state.clone();
                        let _ = std::thread::Builder::new()
                            .name("fault-proxy-conn".into())
                            .spawn(move || {
                                let _ = serve(client, upstream, &state);
                            });
                    }
                })?;
        }
        Ok(FaultProxy { addr, state, stop })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits `delay` before forwarding each request (0: none).
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// Answers the next `n` requests whose path contains `matching` (any
    /// request for `None`) with `503 Slow Down`, S3's throttling answer,
    /// instead of forwarding them.
    pub fn fail_next(&self, n: u32, matching: Option<&str>) {
        let mut st = self.state();
        st.fail_next = n;
        st.fail_matching = matching.map(str::to_string);
    }

    /// Cuts the connection in the middle of the body of the next request
    /// whose body is larger than `bytes`: half the body reaches the server,
    /// then both connections are closed.
    pub fn cut_next_body_over(&self, bytes: u64) {
        self.state().cut_body_over = Some(bytes);
    }

    /// Requests answered with 503 so far.
    pub fn failed(&self) -> u64 {
        self.state().failed
    }

    /// Connections cut so far.
    pub fn cut(&self) -> u64 {
        self.state().cut
    }

    /// Every request seen so far: method and path (with query).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state().requests.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// A request or response head: the start line and the headers, as read.
struct Head {
    raw: Vec<u8>,
    start: String,
    length: Option<u64>,
    chunked: bool,
    close: bool,
}

fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut start = String::new();
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return if raw.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "head cut short",
                ))
            };
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if start.is_empty() {
            start = text.to_string();
            continue;
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    Ok(Some(Head {
        raw,
        start,
        length,
        chunked,
        close,
    }))
}

/// Copies a body of `head`'s framing from `r` to `w`.
fn relay_body(head: &Head, r: &mut impl BufRead, w: &mut impl Write) -> io::Result<()> {
    if head.chunked {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            w.write_all(&size_line)?;
            let text = String::from_utf8_lossy(&size_line);
            let size = u64::from_str_radix(text.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut line = Vec::new();
                    r.read_until(b'\n', &mut line)?;
                    w.write_all(&line)?;
                    if line == b"\r\n" || line.is_empty() {
                        return Ok(());
                    }
                }
            }
            io::copy(&mut r.take(size + 2), w)?;
        }
    } else if let Some(n) = head.length {
        let copied = io::copy(&mut r.take(n), w)?;
        if copied < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "body cut short",
            ));
        }
    }
    Ok(())
}

fn serve(client: TcpStream, upstream: SocketAddr, state: &Mutex<State>) -> io::Result<()> {
    client.set_nodelay(true)?;
    let mut client_in = BufReader::new(client.try_clone()?);
    let mut client_out = client;
    let mut server: Option<(BufReader<TcpStream>, TcpStream)> = None;
    while let Some(request) = read_head(&mut client_in)? {
        let mut parts = request.start.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let (delay, fail, cut) = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let fail = st.fail_next > 0
                && st
                    .fail_matching
                    .as_ref()
                    .is_none_or(|m| path.contains(m.as_str()));
            st.requests.push((method.clone(), path));
            if fail {
                st.fail_next -= 1;
                st.failed += 1;
            }
            let cut = !fail
                && matches!((st.cut_body_over, request.length), (Some(limit), Some(n)) if n > limit);
            if cut {
                st.cut_body_over = None;
                st.cut += 1;
            }
            (st.delay, fail, cut)
        };
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        if fail {
            relay_body(&request, &mut client_in, &mut io::sink())?;
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                        <Message>Please reduce your request rate.</Message></Error>";
            write!(
                client_out,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            client_out.flush()?;
            continue;
        }
        if server.is_none() {
            let s = TcpStream::connect(upstream)?;
            s.set_nodelay(true)?;
            server = Some((BufReader::new(s.try_clone()?), s));
        }
        let (server_in, server_out) = server.as_mut().expect("connected above");
        server_out.write_all(&request.raw)?;
        if cut {
            let half = request.length.unwrap_or(0) / 2;
            io::copy(&mut (&mut client_in).take(half), server_out)?;
            server_out.flush()?;
            let _ = server_out.shutdown(Shutdown::Both);
            let _ = client_out.shutdown(Shutdown::Both);
            return Ok(());
        }
        relay_body(&request, &mut client_in, server_out)?;
        server_out.flush()?;
        let Some(response) = read_head(server_in)? else {
            return Ok(());
        };
        client_out.write_all(&response.raw)?;
        let status: u16 = response
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let bodiless = method == "HEAD" || status < 200 || status == 204 || status == 304;
        if !bodiless && response.length.is_none() && !response.chunked {
            // A body that runs to the end of the connection.
            io::copy(server_in, &mut client_out)?;
            return Ok(());
        }
        if !bodiless {
            relay_body(&response, server_in, &mut client_out)?;
        }
        client_out.flush()?;
        if response.close || request.close {
            return Ok(());
        }
    }
    Ok(())
}
