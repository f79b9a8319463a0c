//! Shared pieces of the benchmark programs: the key naming scheme, a Zipf sampler, a minimal
//! HTTP/1.1 client and percentile helpers.
//!
//! The load generator speaks HTTP/1.1 over raw keep-alive connections instead of using an HTTP
//! client library, so that one core can drive the service at its maximum rate and the measured
//! latency holds little client work.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Returns the lookup key of rank `rank`: a domain under the reserved `.example` TLD.
///
/// Rank 0 is the most frequent key of a Zipf stream.
pub fn key_for_rank(rank: usize) -> String {
    format!("h{rank}.bench.example")
}

/// Tells whether the emulator of a run with `hit_keys` MISP attributes spaced `hit_stride`
/// ranks apart contains an attribute for `rank`.
pub fn is_hit_rank(rank: usize, hit_keys: usize, hit_stride: usize) -> bool {
    hit_stride > 0 && rank.is_multiple_of(hit_stride) && rank / hit_stride < hit_keys
}

/// Samples ranks `0..n` with probability proportional to `1 / (rank + 1)^exponent`, by
/// inverting the cumulative distribution with a binary search.
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// Precomputes the cumulative weights of `n` ranks.
    pub fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(exponent);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// Draws one rank.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let total = *self.cumulative.last().expect("at least one rank");
        let target = rng.f64() * total;
        self.cumulative
            .partition_point(|&weight| weight <= target)
            .min(self.cumulative.len() - 1)
    }
}

/// Returns the `quantile` (0..=1) of sorted samples, or 0 when there are none.
pub fn percentile(sorted: &[u64], quantile: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Formats nanoseconds as milliseconds with three decimals.
pub fn ms(nanos: u64) -> String {
    format!("{:.3}", nanos as f64 / 1e6)
}

/// One keep-alive HTTP/1.1 connection that sends one request at a time.
///
/// Responses must carry `Content-Length`; chunked bodies are rejected, because none of the
/// servers under test sends them for the routes used.
pub struct Connection {
    addr: SocketAddr,
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// A response read in full.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Connection {
    /// Opens a connection with `TCP_NODELAY`.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr,
            stream,
            buffer: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `GET path` and reads the response. Reconnects once when the server had closed
    /// the idle connection.
    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.round_trip(request.as_bytes()).await
    }

    /// Sends `POST path` with a JSON body and reads the response.
    pub async fn post_json(&mut self, path: &str, body: &[u8]) -> io::Result<Response> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.round_trip(&request).await
    }

    async fn round_trip(&mut self, request: &[u8]) -> io::Result<Response> {
        match self.try_round_trip(request).await {
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                *self = Connection::connect(self.addr).await?;
                self.try_round_trip(request).await
            }
            result => result,
        }
    }

    async fn try_round_trip(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.buffer.clear();
        let header_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buffer[..header_end])
            .map_err(|_| invalid("the response head is not UTF-8"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid("the response has no status code"))?;
        let mut length = None;
        for line in head.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid("chunked responses are not supported"));
            }
        }
        let length = length.ok_or_else(|| invalid("the response has no Content-Length"))?;
        while self.buffer.len() < header_end + length {
            self.fill().await?;
        }
        let body = self.buffer[header_end..header_end + length].to_vec();
        Ok(Response { status, body })
    }

    async fn fill(&mut self) -> io::Result<()> {
        let start = self.buffer.len();
        self.buffer.resize(start + 16 * 1024, 0);
        let read = self.stream.read(&mut self.buffer[start..]).await;
        let read = match read {
            Ok(read) => read,
            Err(err) => {
                self.buffer.truncate(start);
                return Err(err);
            }
        };
        self.buffer.truncate(start + read);
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// Parses `http://host:port` (a trailing slash or path is ignored) into a socket address.
pub fn parse_base_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("invalid URL {url:?}: expected http://127.0.0.1:PORT"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .parse()
        .map_err(|err| format!("invalid URL {url:?}: {err}; expected http://127.0.0.1:PORT"))
}

/// The maximum wait for one request before the load generator counts it as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
