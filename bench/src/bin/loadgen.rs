//! Load generator for bench/run. Every mode is bounded by a request count and a time limit,
//! talks only to the URL it is given (bench/run passes 127.0.0.1 addresses), and prints
//! `name=value` lines for the script.
//!
//! Modes:
//! - `zipf`: closed loop; `--clients` connections draw keys from one Zipf stream.
//! - `open`: open loop at a fixed request rate. One pacer writes each request at its
//!   scheduled time, pipelined on the connections in turn, and latency runs from that
//!   scheduled time, so a stalled server cannot hide its queueing delay, as in wrk2.
//! - `burst`: opens `--count` connections, then sends one request on each at the same moment.
//! - `fill`: looks up a range of ranks, by bulk `POST /lookup` (1000 keys per request by
//!   default) or by one `GET /lookup/{key}` per key.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use misp_lookup_bench::{
    Connection, REQUEST_TIMEOUT, Zipf, key_for_rank, ms, parse_base_url, percentile,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::watch;

/// Load generator for bench/run. Rank r is the key `h{r}.bench.example`.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Closed loop: connections draw keys from one Zipf stream.
    Zipf(ZipfArgs),
    /// Open loop at a fixed rate, timed from each request's scheduled send time.
    Open(OpenArgs),
    /// One request per connection, all sent at the same moment.
    Burst(BurstArgs),
    /// Looks up a range of ranks once, to fill the cache.
    Fill(FillArgs),
}

#[derive(clap::Args)]
struct ZipfArgs {
    /// Base URL, http://127.0.0.1:PORT.
    #[arg(long)]
    url: String,
    /// Total lookups in the stream.
    #[arg(long, default_value_t = 1_000_000)]
    lookups: usize,
    /// Distinct keys the stream draws from.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// Zipf exponent s: rank r has weight 1 / (r + 1)^s.
    #[arg(long, default_value_t = 1.0)]
    exponent: f64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 256)]
    clients: usize,
    /// Seed of the key stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time limit; the run stops early when it is reached.
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
}

#[derive(clap::Args)]
struct OpenArgs {
    /// Base URL, http://127.0.0.1:PORT.
    #[arg(long)]
    url: String,
    /// Request rate, requests per second.
    #[arg(long)]
    rate: f64,
    /// Run time in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Connections the requests are spread over.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// First rank of the keys, which are used in turn.
    #[arg(long, default_value_t = 0)]
    first_rank: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1)]
    distinct_keys: usize,
}

#[derive(clap::Args)]
struct BurstArgs {
    /// Base URL, http://127.0.0.1:PORT.
    #[arg(long)]
    url: String,
    /// Requests, each on its own connection.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// First rank of the keys.
    #[arg(long)]
    first_rank: usize,
    /// Number of distinct keys; request i uses rank first_rank + i % distinct_keys.
    #[arg(long, default_value_t = 1)]
    distinct_keys: usize,
}

#[derive(clap::Args)]
struct FillArgs {
    /// Base URL, http://127.0.0.1:PORT.
    #[arg(long)]
    url: String,
    /// First rank to look up.
    #[arg(long)]
    first_rank: usize,
    /// Number of ranks to look up.
    #[arg(long)]
    count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Keys per request: bulk `POST /lookup` bodies of this many keys, or with 1, one
    /// `GET /lookup/{key}` per key, as Graylog sends them.
    #[arg(long, default_value_t = 1000)]
    keys_per_request: usize,
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the Tokio runtime builds");
    let result = runtime.block_on(async {
        match cli.mode {
            Mode::Zipf(args) => zipf(args).await,
            Mode::Open(args) => open(args).await,
            Mode::Burst(args) => burst(args).await,
            Mode::Fill(args) => fill(args).await,
        }
    });
    if let Err(message) = result {
        eprintln!("loadgen: {message}");
        std::process::exit(1);
    }
}

/// Counts of one client's requests.
#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    ok: usize,
    failed_status: usize,
    failed_io: usize,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.ok += other.ok;
        self.failed_status += other.failed_status;
        self.failed_io += other.failed_io;
    }

    fn print(&mut self, elapsed: Duration) {
        self.latencies.sort_unstable();
        let total = self.ok + self.failed_status + self.failed_io;
        println!("requests={total}");
        println!("ok={}", self.ok);
        println!("failed_status={}", self.failed_status);
        println!("failed_io={}", self.failed_io);
        println!("elapsed_s={:.3}", elapsed.as_secs_f64());
        println!("rate={:.0}", total as f64 / elapsed.as_secs_f64());
        for (name, quantile) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            println!("{name}_ms={}", ms(percentile(&self.latencies, quantile)));
        }
        println!("max_ms={}", ms(self.latencies.last().copied().unwrap_or(0)));
    }
}

async fn timed_get(connection: &mut Connection, path: &str, tally: &mut Tally) -> bool {
    match tokio::time::timeout(REQUEST_TIMEOUT, connection.get(path)).await {
        Ok(Ok(response)) if response.status == 200 => {
            tally.ok += 1;
            true
        }
        Ok(Ok(_)) => {
            tally.failed_status += 1;
            true
        }
        Ok(Err(_)) | Err(_) => {
            tally.failed_io += 1;
            false
        }
    }
}

async fn zipf(args: ZipfArgs) -> Result<(), String> {
    let addr = parse_base_url(&args.url)?;
    let sampler = Zipf::new(args.keys, args.exponent);
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let stream: Arc<Vec<usize>> = Arc::new(
        (0..args.lookups)
            .map(|_| sampler.sample(&mut rng))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.max_seconds);

    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let stream = Arc::clone(&stream);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut connection = match Connection::connect(addr).await {
                Ok(connection) => connection,
                Err(_) => return tally,
            };
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&rank) = stream.get(index) else {
                    break;
                };
                let path = format!("/lookup/{}", key_for_rank(rank));
                let sent = Instant::now();
                let alive = timed_get(&mut connection, &path, &mut tally).await;
                tally.latencies.push(sent.elapsed().as_nanos() as u64);
                if !alive {
                    match Connection::connect(addr).await {
                        Ok(fresh) => connection = fresh,
                        Err(_) => break,
                    }
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(
            task.await
                .map_err(|err| format!("a client task failed: {err}"))?,
        );
    }
    let elapsed = start.elapsed();
    let issued = next.load(Ordering::Relaxed).min(args.lookups);
    let distinct = stream[..issued].iter().collect::<HashSet<_>>().len();
    tally.print(elapsed);
    println!("issued={issued}");
    println!("distinct_keys_seen={distinct}");
    println!("stopped_by_time_limit={}", issued < args.lookups);
    Ok(())
}

async fn open(args: OpenArgs) -> Result<(), String> {
    let addr = parse_base_url(&args.url)?;
    if args.rate <= 0.0 || args.connections == 0 || args.distinct_keys == 0 {
        return Err("--rate, --connections and --distinct-keys must be positive".into());
    }
    let requests: Vec<Vec<u8>> = (0..args.distinct_keys)
        .map(|offset| {
            let key = key_for_rank(args.first_rank + offset);
            format!("GET /lookup/{key} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
        })
        .collect();

    let mut writers = Vec::with_capacity(args.connections);
    let mut queues = Vec::with_capacity(args.connections);
    let mut readers = Vec::with_capacity(args.connections);
    let (done_sender, done) = watch::channel(false);
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + Duration::from_secs_f64(args.seconds);
    let deadline = end + REQUEST_TIMEOUT;
    for _ in 0..args.connections {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
        stream
            .set_nodelay(true)
            .map_err(|err| format!("cannot set TCP_NODELAY: {err}"))?;
        let (reader, writer) = stream.into_split();
        let queue = PendingQueue::default();
        readers.push(tokio::spawn(read_responses(
            reader,
            queue.clone(),
            done.clone(),
            deadline,
        )));
        writers.push(Some(writer));
        queues.push(queue);
    }

    // The pacer writes each request at its scheduled time on the next connection in turn,
    // pipelined behind any request still waiting there, so a slow response never delays a
    // later send.
    let mut tally = Tally::default();
    for sequence in 0usize.. {
        let scheduled = start + Duration::from_secs_f64(sequence as f64 / args.rate);
        if scheduled >= end {
            break;
        }
        wait_until(scheduled).await;
        let slot = sequence % args.connections;
        let Some(writer) = writers[slot].as_mut() else {
            tally.failed_io += 1;
            continue;
        };
        queues[slot].push(scheduled);
        let request = &requests[sequence % requests.len()];
        if writer.write_all(request).await.is_err() {
            // The request stays queued and counts as failed below or in the reader.
            writers[slot] = None;
        }
    }
    done_sender.send_replace(true);

    for reader in readers {
        tally.merge(
            reader
                .await
                .map_err(|err| format!("a reader task failed: {err}"))?,
        );
    }
    // Requests written after their connection's reader stopped got no response.
    tally.failed_io += queues.iter().map(|queue| queue.lock().len()).sum::<usize>();
    tally.print(start.elapsed());
    println!("target_rate={:.0}", args.rate);
    drop(writers);
    Ok(())
}

/// Scheduled send times of one connection's requests that have no response yet, oldest first.
#[derive(Clone, Default)]
struct PendingQueue(Arc<Mutex<VecDeque<Instant>>>);

impl PendingQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, scheduled: Instant) {
        self.lock().push_back(scheduled);
    }

    fn pop(&self) -> Option<Instant> {
        self.lock().pop_front()
    }
}

/// Reads one connection's responses in order and times each from its scheduled send time.
/// Stops once the pacer is done and every request has its response, when the connection
/// fails, or at `deadline`. Requests still without a response then count as I/O failures.
async fn read_responses(
    mut reader: OwnedReadHalf,
    queue: PendingQueue,
    mut done: watch::Receiver<bool>,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut parsed = 0;
    loop {
        while let Some(response) = parse_response(&buffer[parsed..]) {
            let Ok((length, status)) = response else {
                tally.failed_io += queue.lock().drain(..).count();
                return tally;
            };
            parsed += length;
            let Some(scheduled) = queue.pop() else {
                // A response to nothing: the connection is out of step.
                tally.failed_io += 1;
                return tally;
            };
            tally.latencies.push(scheduled.elapsed().as_nanos() as u64);
            if status == 200 {
                tally.ok += 1;
            } else {
                tally.failed_status += 1;
            }
        }
        buffer.drain(..parsed);
        parsed = 0;
        if *done.borrow() && queue.lock().is_empty() {
            return tally;
        }
        buffer.reserve(16 * 1024);

        tokio::select! {
            read = reader.read_buf(&mut buffer) => {
                if !matches!(read, Ok(1..)) {
                    tally.failed_io += queue.lock().drain(..).count();
                    return tally;
                }
            }
            _ = done.changed() => {}
            () = tokio::time::sleep_until(deadline.into()) => {
                tally.failed_io += queue.lock().drain(..).count();
                return tally;
            }
        }
    }
}

/// Parses one response at the start of `bytes` into its length and status, or `None` while
/// it is incomplete. Responses must carry `Content-Length`.
fn parse_response(bytes: &[u8]) -> Option<Result<(usize, u16), String>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_length = match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return None,
        Err(err) => return Some(Err(format!("unparsable response: {err}"))),
    };
    let content_length = response
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("content-length"))
        .and_then(|header| std::str::from_utf8(header.value).ok())
        .and_then(|value| value.trim().parse::<usize>().ok());
    let Some(content_length) = content_length else {
        return Some(Err("a response has no Content-Length".into()));
    };
    let status = response.code.unwrap_or(0);
    let length = head_length + content_length;
    (bytes.len() >= length).then_some(Ok((length, status)))
}

/// Waits until `instant`: sleeps on the Tokio timer, whose resolution is 1 ms, until 1 ms
/// before, then yields in a loop, so that a request leaves within microseconds of its slot
/// while the reader tasks keep running.
async fn wait_until(instant: Instant) {
    let early = instant.checked_sub(Duration::from_millis(1));
    if let Some(early) = early
        && early > Instant::now()
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < instant {
        tokio::task::yield_now().await;
    }
}

async fn burst(args: BurstArgs) -> Result<(), String> {
    let addr = parse_base_url(&args.url)?;
    if args.distinct_keys == 0 {
        return Err("--distinct-keys must be positive".into());
    }
    let mut connections = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        let connection = Connection::connect(addr)
            .await
            .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
        connections.push(connection);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(args.count + 1));
    let mut tasks = Vec::new();
    for (index, mut connection) in connections.into_iter().enumerate() {
        let barrier = Arc::clone(&barrier);
        let path = format!(
            "/lookup/{}",
            key_for_rank(args.first_rank + index % args.distinct_keys)
        );
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            barrier.wait().await;
            let sent = Instant::now();
            timed_get(&mut connection, &path, &mut tally).await;
            tally.latencies.push(sent.elapsed().as_nanos() as u64);
            tally
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(
            task.await
                .map_err(|err| format!("a client task failed: {err}"))?,
        );
    }
    tally.print(start.elapsed());
    Ok(())
}

async fn fill(args: FillArgs) -> Result<(), String> {
    let keys_per_request = args.keys_per_request.max(1);
    let addr: SocketAddr = parse_base_url(&args.url)?;
    let next = Arc::new(AtomicUsize::new(0));
    let chunks = args.count.div_ceil(keys_per_request);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let next = Arc::clone(&next);
        let first_rank = args.first_rank;
        let count = args.count;
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::connect(addr)
                .await
                .map_err(|err| format!("cannot connect to {addr}: {err}"))?;
            let mut failed = 0usize;
            loop {
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks {
                    break;
                }
                let low = chunk * keys_per_request;
                let high = (low + keys_per_request).min(count);
                if keys_per_request == 1 {
                    let path = format!("/lookup/{}", key_for_rank(first_rank + low));
                    let response = tokio::time::timeout(REQUEST_TIMEOUT, connection.get(&path))
                        .await
                        .map_err(|_| format!("a lookup timed out after {REQUEST_TIMEOUT:?}"))?
                        .map_err(|err| format!("a lookup failed: {err}"))?;
                    failed += usize::from(response.status != 200);
                    continue;
                }
                let keys: Vec<String> = (low..high)
                    .map(|offset| key_for_rank(first_rank + offset))
                    .collect();
                let body = serde_json::json!({ "keys": keys }).to_string();
                let response = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    connection.post_json("/lookup", body.as_bytes()),
                )
                .await
                .map_err(|_| format!("a bulk request timed out after {REQUEST_TIMEOUT:?}"))?
                .map_err(|err| format!("a bulk request failed: {err}"))?;
                if response.status != 200 {
                    return Err(format!(
                        "a bulk request returned {}: {}",
                        response.status,
                        String::from_utf8_lossy(&response.body)
                    ));
                }
                // Error results carry a `"code"` member and lookup results do not, so errors
                // are counted without parsing.
                let text = String::from_utf8_lossy(&response.body);
                failed += text.matches("\"code\":").count();
            }
            Ok::<usize, String>(failed)
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task
            .await
            .map_err(|err| format!("a fill task failed: {err}"))??;
    }
    println!("keys={}", args.count);
    println!("key_errors={failed}");
    println!("elapsed_s={:.3}", start.elapsed().as_secs_f64());
    Ok(())
}
