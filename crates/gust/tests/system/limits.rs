//! The data plane's own limits, over raw sockets on 127.0.0.1: a body sent too slowly is 408
//! and the connection closes; connections past the cap are answered 503 with `Retry-After`
//! and closed; idle keep-alive connections are closed; a Gust out of file descriptors does
//! not spin in its accept loop and serves again once descriptors are free.

use crate::support::*;
use gust_gateway::ServerLimits;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MANIFEST: &str = r#"
[app]
name = "limits"

[functions.echo]
runtime = "nodejs20.x"
handler = "echo.handler"

[[routes]]
route = "GET /items/{id}"
function = "echo"

[[routes]]
route = "POST /items"
function = "echo"
"#;

const ECHO: &str = r#"
exports.handler = async (event) => ({ statusCode: 200, body: event.body || "ok" });
"#;

async fn app(limits: impl FnOnce(&mut ServerLimits)) -> TestApp {
    let dir = write_app(&[("gust.toml", MANIFEST), ("echo.js", ECHO)]);
    TestApp::start_configured(dir, |c| limits(&mut c.limits)).await
}

const GET_ITEM: &[u8] = b"GET /items/1 HTTP/1.1\r\nhost: t\r\n\r\n";

/// One response read off a connection.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn parse(raw: &[u8]) -> Option<(Self, usize)> {
        let text = String::from_utf8_lossy(raw);
        let (head, rest) = text.split_once("\r\n\r\n")?;
        let head = head.to_ascii_lowercase();
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        let body = rest.get(..length)?.to_string();
        let used = head.len() + 4 + length;
        Some((Self { status, head, body }, used))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
    }

    fn error_code(&self) -> String {
        json(&self.body)["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// Reads one complete response (head and `Content-Length` body) within `within`.
async fn read_answer(s: &mut (impl AsyncRead + Unpin), within: Duration) -> Answer {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some((a, _)) = Answer::parse(&raw) {
                return a;
            }
            let n = s.read(&mut buf).await.expect("reading the response");
            assert!(
                n > 0,
                "closed before a full response: {:?}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"))
}

/// Reads until the server closes the connection (a reset after the data counts as closed),
/// within `within`; returns everything read.
async fn read_until_closed(s: &mut (impl AsyncRead + Unpin), within: Duration) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    };
    if tokio::time::timeout(within, read).await.is_err() {
        panic!(
            "the connection was still open after {within:?} (read so far: {:?})",
            String::from_utf8_lossy(&raw)
        );
    }
    raw
}

/// One request on a new connection that asks to be closed after it; `None` when the
/// server closed without answering.
async fn request_once(addr: SocketAddr, path: &str) -> Option<Answer> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let raw = read_until_closed(&mut s, Duration::from_secs(20)).await;
    Answer::parse(&raw).map(|(a, _)| a)
}

#[tokio::test]
async fn a_body_sent_too_slowly_is_408_and_the_connection_closes() {
    let app = app(|l| l.body_read_timeout = Duration::from_secs(1)).await;
    let addr = app.platform().gateway_addr;
    // A body sent at once is fine (and warms the function).
    let r = app.post("/items", "quick").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "quick");

    let (mut rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    wr.write_all(b"POST /items HTTP/1.1\r\nhost: t\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // Five bytes a second: the 100-byte body would take 20 s.
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let raw = read_until_closed(&mut rd, Duration::from_secs(15)).await;
    let took = started.elapsed();
    trickle.abort();
    let (answer, used) =
        Answer::parse(&raw).unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(&raw)));
    assert_eq!(answer.status, 408, "{}", answer.head);
    assert_eq!(answer.error_code(), "RequestTimeout");
    assert_eq!(answer.header("connection"), Some("close"));
    assert_eq!(used, raw.len(), "nothing after the answer");
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}, before the timeout"
    );

    // The same Gust goes on serving.
    assert_eq!(app.post("/items", "again").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_get_503_with_retry_after_and_are_closed() {
    let app = app(|l| {
        l.max_connections = 3;
        // The held connections must not be closed as idle while the test runs.
        l.header_read_timeout = Duration::from_secs(120);
    })
    .await;
    let addr = app.platform().gateway_addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(GET_ITEM).await.unwrap();
        assert_eq!(read_answer(&mut s, Duration::from_secs(30)).await.status, 200);
        held.push(s); // open and idle (keep-alive)
    }

    // Over the cap, each new connection is answered at once and closed; a client that has
    // not sent anything yet is answered too.
    for send_first in [true, false] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if send_first {
            s.write_all(GET_ITEM).await.unwrap();
        }
        let raw = read_until_closed(&mut s, Duration::from_secs(10)).await;
        let (answer, _) =
            Answer::parse(&raw).unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(&raw)));
        assert_eq!(answer.status, 503, "{}", answer.head);
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.error_code(), "TooManyConnections");
    }
    // The held connections still work.
    for s in &mut held {
        s.write_all(GET_ITEM).await.unwrap();
        assert_eq!(read_answer(s, Duration::from_secs(30)).await.status, 200);
    }

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = request_once(addr, "/items/1").await.map(|a| a.status);
        if status == Some(200) {
            break;
        }
        assert_eq!(
            status,
            Some(503),
            "only 503 is expected while the closed ones are counted"
        );
        assert!(
            Instant::now() < deadline,
            "still refused 10 s after the held connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let app = app(|l| l.header_read_timeout = Duration::from_secs(1)).await;
    let addr = app.platform().gateway_addr;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(GET_ITEM).await.unwrap();
    assert_eq!(read_answer(&mut s, Duration::from_secs(30)).await.status, 200);
    let idle = Instant::now();
    let rest = read_until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(
        idle.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        idle.elapsed()
    );

    // A connection that never sends a request is closed too.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(read_until_closed(&mut silent, Duration::from_secs(10)).await.is_empty());
    app.stop().await;
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    // Fields after the command: state is 3rd in stat(5), utime 14th, stime 15th.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100)
}

/// Open descriptors of `pid` numbered below `limit` (the ones `RLIMIT_NOFILE` bounds).
fn fds_below(pid: u32, limit: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok_and(|n| n < limit))
                .count()
        })
        .unwrap_or(0)
}

/// `gust up` on an app without functions, under `ulimit -n nofile`; returns the child (its
/// pid is Gust's: `sh` execs it) and the gateway address.
async fn gust_up_with_nofile(app: &Path, state: &Path, stderr: &Path, nofile: u32) -> (GustChild, SocketAddr) {
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_gust"))
        .args(gust_up_args(app, state))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut child = GustChild(child);
    let info = state.join("gust.json");
    let mut v = serde_json::Value::Null;
    wait_for("gust up to write gust.json", Duration::from_secs(30), || {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "gust up exited early: {status}: {}",
                std::fs::read_to_string(stderr).unwrap_or_default()
            );
        }
        v = std::fs::read_to_string(&info)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        v["gateway"].is_string()
    })
    .await;
    let gateway = v["gateway"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    (child, gateway)
}

struct GustChild(std::process::Child);

impl Drop for GustChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn out_of_file_descriptors_gust_backs_off_and_recovers() {
    const NOFILE: u32 = 64;
    let app = write_app(&[("gust.toml", "[app]\nname = \"fds\"\n")]);
    let state = app.path().join(".gust");
    let stderr = app.path().join("stderr.log");
    let (gust, addr) = gust_up_with_nofile(app.path(), &state, &stderr, NOFILE).await;
    let pid = gust.0.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(&format!(" {NOFILE} "))),
        "{limits}"
    );
    let answered = request_once(addr, "/nothing")
        .await
        .expect("an answer before saturation");
    assert_eq!(answered.status, 404);
    assert_eq!(answered.error_code(), "RouteNotFound");

    // More connections than Gust has descriptors, each with a request (kept alive): those
    // past the limit wait in the listen backlog while `accept` fails with EMFILE.
    let mut conns = Vec::new();
    for _ in 0..NOFILE + 16 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /nothing HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
        conns.push(s);
    }
    wait_for("Gust to use every descriptor it may", Duration::from_secs(20), || {
        fds_below(pid, NOFILE) >= NOFILE as usize
    })
    .await;
    // The last connection is not served while Gust is saturated.
    let last = conns.last_mut().unwrap();
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), last.read(&mut byte))
            .await
            .is_err(),
        "a connection past the descriptor limit was answered"
    );

    // Saturated, Gust must not spin: over 2 s it uses well under a core.
    let ticks = clock_ticks_per_second();
    let (cpu0, wall0) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await; // the measurement window
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / ticks as f64;
    let wall = wall0.elapsed().as_secs_f64();
    assert!(
        cpu < 0.3 * wall,
        "Gust used {cpu:.2} s of CPU in {wall:.2} s while out of descriptors"
    );
    let log = std::fs::read_to_string(&stderr).unwrap();
    let warned = log
        .lines()
        .filter(|l| l.contains("accepting connections failed"))
        .count();
    assert_eq!(warned, 1, "one warning for the episode:\n{log}");
    assert!(log.contains("out of file descriptors"), "{log}");

    // Descriptors free again: the backlog drains and new connections are served.
    drop(conns);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(a) = request_once(addr, "/nothing").await {
            assert_eq!(a.status, 404);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Gust did not serve again after descriptors were freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(gust);
}
