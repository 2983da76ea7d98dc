//! A plain HTTP/1.1 GET against orderd's HTTP listener, over a TCP stream:
//! enough for health probes and a metrics scrape without an HTTP client
//! crate.
//!
//! Imports: nothing of this crate.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP answer: its status code and body.
#[derive(Debug)]
pub struct HttpAnswer {
    /// 200, 503, …
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// `GET path` on `addr`, with `Connection: close`; `None` when nothing
/// answers within five seconds.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<HttpAnswer> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        parse(&String::from_utf8_lossy(&raw))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// `GET /metrics` on `addr`: the Prometheus text exposition.
pub async fn scrape(addr: SocketAddr) -> String {
    let answer = http_get(addr, "/metrics").await.expect("an answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

/// The value of the sample `series` (name and labels exactly as rendered)
/// in a Prometheus text exposition, 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
        .unwrap_or(0.0)
}

fn parse(raw: &str) -> Option<HttpAnswer> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    Some(HttpAnswer { status, body })
}

/// The body of a chunked transfer: each chunk is `<hex size>\r\n<data>\r\n`.
fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
