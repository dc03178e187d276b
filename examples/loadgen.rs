//! The load generator of `benches/compare.sh`, in two modes.
//!
//! `loadgen rate`: an open-loop, fixed-rate HTTP/1.1 client. Each of the
//! `--connections` keep-alive connections has its own schedule (connection `i`
//! sends its `k`-th request at `start + (i + k * connections) / rate`), and a
//! request's latency is measured from the time it was *meant* to be sent, so a
//! slow answer that delays the next requests on its connection shows up in
//! their latency too (no coordinated omission, as in wrk2). One OS thread per
//! connection with blocking sockets: `thread::sleep` wakes within tens of
//! microseconds, where a tokio timer would round every send up to the next
//! millisecond. Every latency is kept, so the percentiles are exact. Prints
//! one line of `key=value` pairs.
//!
//! `loadgen idle`: opens `--connections` connections, sends one GET on each,
//! reads its answer, then holds them all open and idle for `--hold` seconds,
//! writing `--ready-file` once every connection has been answered (so a
//! script can read the proxy's RSS then).
//!
//! Build with `cargo build --release --example loadgen`.
#![allow(clippy::unwrap_used)] // a panic is how a bench tool reports failure

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Fixed-rate load; prints latency percentiles from the intended send time.
    Rate(RateArgs),
    /// Many idle keep-alive connections, each after one answered GET.
    Idle(IdleArgs),
}

#[derive(clap::Args)]
struct RateArgs {
    /// `http://HOST:PORT/PATH` or `https://...`
    #[arg(long)]
    url: String,
    /// Requests per second, over all connections.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Extra request header, `name: value`; repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Size of the request body (bytes of `x`); 0 sends none.
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
    /// PEM file of the CA that signed an https server's certificate.
    #[arg(long)]
    ca: Option<String>,
}

#[derive(clap::Args)]
struct IdleArgs {
    /// `HOST:PORT`
    #[arg(long)]
    addr: String,
    #[arg(long, default_value = "/")]
    path: String,
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Seconds to hold the connections once all are answered.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Written (with the count held) once every connection has been answered.
    #[arg(long)]
    ready_file: Option<String>,
    /// Give up waiting for answers after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

fn main() {
    match Cli::parse().mode {
        Mode::Rate(args) => rate(&args),
        Mode::Idle(args) => idle(&args),
    }
}

/// The parts of a URL this tool needs.
struct Target {
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    addr: SocketAddr,
    request: Vec<u8>,
}

fn target(args: &RateArgs) -> Target {
    let (https, rest) = if let Some(rest) = args.url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = args.url.strip_prefix("http://") {
        (false, rest)
    } else {
        panic!("--url must start with http:// or https://");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = authority
        .to_socket_addrs()
        .expect("resolvable host:port")
        .next()
        .expect("an address");
    let mut request = format!("{} {path} HTTP/1.1\r\nhost: {authority}\r\n", args.method);
    for header in &args.headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    if args.body_bytes > 0 || args.method == "POST" || args.method == "PUT" {
        request.push_str(&format!(
            "content-type: application/octet-stream\r\ncontent-length: {}\r\n",
            args.body_bytes
        ));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend(std::iter::repeat_n(b'x', args.body_bytes));
    let tls = https.then(|| {
        let mut roots = RootCertStore::empty();
        if let Some(ca) = &args.ca {
            for cert in CertificateDer::pem_file_iter(ca).expect("readable --ca") {
                roots.add(cert.expect("a PEM certificate")).unwrap();
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let name = ServerName::try_from(host.to_owned()).expect("a server name");
        (Arc::new(config), name)
    });
    Target { tls, addr, request }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn connect(target: &Target) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(&target.addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    match &target.tls {
        None => Ok(Conn::Plain(stream)),
        Some((config, name)) => {
            let conn =
                ClientConnection::new(config.clone(), name.clone()).map_err(io::Error::other)?;
            let mut tls = StreamOwned::new(conn, stream);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock)?;
            }
            Ok(Conn::Tls(Box::new(tls)))
        }
    }
}

/// Reads one HTTP/1.1 response (Content-Length or chunked); returns its status
/// and whether the connection stays usable. `buf` keeps bytes read past it.
fn read_response(conn: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        fill(conn, buf)?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(io::Error::other)?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("bad status line"))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep = true;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            keep = !value.eq_ignore_ascii_case("close");
        }
    }
    buf.drain(..head_end);
    if chunked {
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                fill(conn, buf)?;
            };
            let size_text = std::str::from_utf8(&buf[..line_end]).map_err(io::Error::other)?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(io::Error::other)?;
            let need = line_end + 2 + size + 2;
            while buf.len() < need {
                fill(conn, buf)?;
            }
            buf.drain(..need);
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = length {
        while buf.len() < length {
            fill(conn, buf)?;
        }
        buf.drain(..length);
    } else if status != 204 && status != 304 {
        // No length: the body runs to the end of the connection.
        while fill(conn, buf).is_ok() {}
        buf.clear();
        keep = false;
    }
    Ok((status, keep))
}

fn fill(conn: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    let n = conn.read(&mut chunk)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Default)]
struct Outcome {
    /// From the intended send time to the whole answer, in nanoseconds.
    latency: Vec<u64>,
    /// From the actual send time to the whole answer.
    service: Vec<u64>,
    errors: u64,
    non_2xx: u64,
}

fn rate(args: &RateArgs) {
    let target = Arc::new(target(args));
    let connections = args.connections.max(1);
    let interval = Duration::from_secs_f64(connections as f64 / args.rate);
    let duration = Duration::from_secs_f64(args.duration);
    let rate_hz = args.rate;
    let barrier = Arc::new(Barrier::new(connections + 1));
    let start_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let threads: Vec<_> = (0..connections)
        .map(|i| {
            let target = target.clone();
            let barrier = barrier.clone();
            let start_at = start_at.clone();
            std::thread::spawn(move || {
                let mut conn = connect(&target).ok();
                barrier.wait();
                let start = *start_at.wait();
                let offset = Duration::from_secs_f64(i as f64 / rate_hz);
                let mut out = Outcome::default();
                let mut buf = Vec::with_capacity(16 * 1024);
                for k in 0u32.. {
                    let due = offset + interval * k;
                    if due >= duration {
                        break;
                    }
                    let intended = start + due;
                    let now = Instant::now();
                    if intended > now {
                        std::thread::sleep(intended - now);
                    }
                    let sent = Instant::now();
                    let result = (|| {
                        if conn.is_none() {
                            buf.clear();
                            conn = Some(connect(&target)?);
                        }
                        let c = conn.as_mut().unwrap();
                        c.write_all(&target.request)?;
                        c.flush()?;
                        read_response(c, &mut buf)
                    })();
                    let done = Instant::now();
                    match result {
                        Ok((status, keep)) => {
                            out.latency.push((done - intended).as_nanos() as u64);
                            out.service.push((done - sent).as_nanos() as u64);
                            if !(200..300).contains(&status) {
                                out.non_2xx += 1;
                            }
                            if !keep {
                                conn = None;
                            }
                        }
                        Err(_) => {
                            out.errors += 1;
                            conn = None;
                        }
                    }
                }
                out
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now() + Duration::from_millis(50);
    start_at.set(start).unwrap();
    let mut all = Outcome::default();
    for thread in threads {
        let out = thread.join().unwrap();
        all.latency.extend(out.latency);
        all.service.extend(out.service);
        all.errors += out.errors;
        all.non_2xx += out.non_2xx;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.latency.sort_unstable();
    all.service.sort_unstable();
    let ms = |v: &[u64], q: f64| -> String {
        if v.is_empty() {
            return "nan".into();
        }
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        format!("{:.3}", v[i] as f64 / 1e6)
    };
    println!(
        "requests={} errors={} non2xx={} achieved_rps={:.0} p50_ms={} p90_ms={} p99_ms={} p999_ms={} max_ms={} service_p50_ms={} service_p99_ms={}",
        all.latency.len(),
        all.errors,
        all.non_2xx,
        all.latency.len() as f64 / elapsed,
        ms(&all.latency, 0.50),
        ms(&all.latency, 0.90),
        ms(&all.latency, 0.99),
        ms(&all.latency, 0.999),
        ms(&all.latency, 1.0),
        ms(&all.service, 0.50),
        ms(&all.service, 0.99),
    );
}

fn idle(args: &IdleArgs) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(idle_async(args));
}

async fn idle_async(args: &IdleArgs) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {} HTTP/1.1\r\nhost: {}\r\n\r\n", args.path, args.addr);
    let request: Arc<[u8]> = request.into_bytes().into();
    let answered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let connects = Arc::new(tokio::sync::Semaphore::new(256));
    let (release, hold) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.connections {
        let (addr, request) = (args.addr.clone(), request.clone());
        let (answered, failed, connects) = (answered.clone(), failed.clone(), connects.clone());
        let mut hold = hold.clone();
        tasks.spawn(async move {
            let permit = connects.acquire_owned().await;
            let result = async {
                let mut stream = tokio::net::TcpStream::connect(&addr).await?;
                stream.write_all(&request).await?;
                // Read until the answer's head and Content-Length body are in.
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 4096];
                loop {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = find(&buf, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .split("\r\n")
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            return Ok(stream);
                        }
                    }
                }
            }
            .await;
            drop(permit);
            match result {
                Ok(stream) => {
                    answered.fetch_add(1, Ordering::Relaxed);
                    let _ = hold.wait_for(|released| *released).await;
                    drop(stream);
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    while answered.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < args.connections
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held = answered.load(Ordering::Relaxed);
    let line = format!("held={held} failed={}", failed.load(Ordering::Relaxed));
    if let Some(path) = &args.ready_file {
        std::fs::write(path, &line).unwrap();
    }
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    println!("{line}");
    release.send_replace(true);
    tasks.abort_all();
}
