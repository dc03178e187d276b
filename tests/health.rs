//! `strangler health --admin ADDR`: exit 0 iff `GET http://ADDR/readyz` answers
//! 200, for container health checks in images without curl. The admin API is
//! played by a tiny in-process HTTP/1.1 server, so these tests need nothing
//! else from the proxy.
#![allow(clippy::unwrap_used)] // a panic is how a test or bench reports failure

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Killed, free_port};

/// `strangler health`'s own request timeout.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// No run of `strangler health` may take longer than this.
const DEADLINE: Duration = Duration::from_secs(10);

/// Runs `strangler health --admin ADDR` and waits for it, at most [`DEADLINE`].
fn health(admin: SocketAddr) -> (ExitStatus, Duration) {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args(["health", "--admin", &admin.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strangler health");
    let status = wait_bounded(child, DEADLINE);
    (status, started.elapsed())
}

/// Waits for `child` to exit; kills it and fails the test after `limit`.
fn wait_bounded(mut child: Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Serves, in a background thread, `readyz_status` on `GET /readyz` and 503 on
/// every other request, one request per connection.
fn fake_admin(readyz_status: u16) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            thread::spawn(move || answer(stream, readyz_status));
        }
    });
    addr
}

fn answer(stream: TcpStream, readyz_status: u16) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Read the rest of the head; a GET from `health` has no body.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let status = if method == Some("GET") && target == Some("/readyz") {
        readyz_status
    } else {
        503
    };
    let reason = if status == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let body = if status == 200 { "ready\n" } else { "no\n" };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = reader.get_mut().write_all(response.as_bytes());
}

#[test]
fn nothing_listening_exits_1() {
    let refused = support::dead_addr();
    let addr = refused.addr;
    let (status, _) = health(addr);
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[test]
fn readyz_200_exits_0() {
    let (status, _) = health(fake_admin(200));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn readyz_503_exits_1() {
    let (status, _) = health(fake_admin(503));
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[test]
fn silent_admin_exits_1_after_the_timeout() {
    // Accepts connections (the kernel's backlog does) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let (status, elapsed) = health(listener.local_addr().unwrap());
    assert_eq!(status.code(), Some(1), "{status:?}");
    // Exiting only after `health`'s own 3s timeout proves that the timeout,
    // not some other error, ended the run.
    assert!(
        elapsed >= HEALTH_TIMEOUT,
        "exited after {elapsed:?}, before the {HEALTH_TIMEOUT:?} timeout"
    );
    drop(listener);
}

/// The docker-compose backends use `strangler health --admin <echo address>`
/// as their health check: the echo backend answers 200 on /readyz.
#[test]
fn echo_backend_passes_the_health_check() {
    // Released for echo to bind: another test could take it in between, a
    // race no in-process reservation can close.
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let echo = Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args(["echo", "--name", "legacy", "--listen", &addr.to_string()])
        .args(["--fail-path", "/"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn strangler echo");
    let echo = Killed(echo);
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "echo never listened on {addr}");
        thread::sleep(Duration::from_millis(20));
    }
    // Healthy even though every other path fails (--fail-path /).
    let (status, _) = health(addr);
    assert_eq!(status.code(), Some(0), "{status:?}");
    drop(echo);
}
