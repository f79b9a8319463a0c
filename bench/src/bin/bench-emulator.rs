//! Runs the MISP emulator of `misp_lookup::demo` on 127.0.0.1 with a response latency and a
//! generated data set, plus a control server on another 127.0.0.1 port.
//!
//! It prints `MISP_URL=...` and `CONTROL_URL=...` on stdout once both listen. Control routes:
//! `GET /searches` (restSearch requests received), `POST /reset`, `POST /latency/{ms}` and
//! `POST /fault/{none|500|hang}`. The process exits after `--max-seconds` or on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use misp_lookup::demo::dataset::Dataset;
use misp_lookup::demo::{DEMO_API_KEY, Emulator, EmulatorConfig, Fault};
use misp_lookup_bench::key_for_rank;
use serde_json::Value;

#[derive(Parser)]
struct Args {
    /// Delay before every emulator response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Number of generated domain attributes, one for each of the ranks 0, stride, 2*stride...
    #[arg(long, default_value_t = 0)]
    hit_keys: usize,
    /// Rank distance between two generated attributes.
    #[arg(long, default_value_t = 20)]
    hit_stride: usize,
    /// Lifetime limit, so that a forgotten emulator stops by itself.
    #[arg(long, default_value_t = 1200)]
    max_seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = EmulatorConfig::new(dataset(args.hit_keys, args.hit_stride), DEMO_API_KEY);
    config.latency = Duration::from_millis(args.latency_ms);
    let emulator = Arc::new(Emulator::start(config).await?);

    let state = web::Data::from(Arc::clone(&emulator));
    let control = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/searches", web::get().to(searches))
            .route("/reset", web::post().to(reset))
            .route("/latency/{ms}", web::post().to(latency))
            .route("/fault/{mode}", web::post().to(fault))
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")?;
    let control_addr = control.addrs()[0];
    let control = control.run();
    let handle = control.handle();
    let control = tokio::spawn(control);

    println!("MISP_URL={}", emulator.url());
    println!("CONTROL_URL=http://{control_addr}");

    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(args.max_seconds)) => {
            eprintln!("bench-emulator: --max-seconds {} reached, stopping", args.max_seconds);
        }
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm() => {}
    }
    handle.stop(false).await;
    let _ = control.await;
    Ok(())
}

async fn sigterm() {
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    signal.recv().await;
}

/// Builds the demo data set plus `hit_keys` domain attributes, each a copy of the demo's
/// `phish.example` attribute with its own value, id and UUID, so that a hit renders event tags
/// and the event stub like a real MISP response.
fn dataset(hit_keys: usize, hit_stride: usize) -> Dataset {
    let mut dataset = Dataset::demo();
    let template = dataset
        .attributes
        .iter()
        .find(|attribute| attribute["value"] == "phish.example")
        .cloned()
        .expect("the demo data set has a phish.example attribute");
    for index in 0..hit_keys {
        let mut attribute = template.clone();
        let Value::Object(members) = &mut attribute else {
            unreachable!("attributes are objects");
        };
        members.insert("value".into(), key_for_rank(index * hit_stride).into());
        members.insert("id".into(), (100_000 + index).to_string().into());
        members.insert(
            "uuid".into(),
            format!("00000000-0000-4000-8000-{index:012}").into(),
        );
        dataset.attributes.push(attribute);
    }
    dataset
}

async fn searches(emulator: web::Data<Emulator>) -> HttpResponse {
    HttpResponse::Ok().body(emulator.search_requests().to_string())
}

async fn reset(emulator: web::Data<Emulator>) -> HttpResponse {
    emulator.reset_counters();
    HttpResponse::NoContent().finish()
}

async fn latency(emulator: web::Data<Emulator>, path: web::Path<u64>) -> HttpResponse {
    emulator.set_latency(Duration::from_millis(path.into_inner()));
    HttpResponse::NoContent().finish()
}

async fn fault(emulator: web::Data<Emulator>, path: web::Path<String>) -> HttpResponse {
    let fault = match path.as_str() {
        "none" => Fault::None,
        "500" => Fault::InternalError,
        "hang" => Fault::Hang,
        other => {
            return HttpResponse::BadRequest().body(format!(
                "unknown fault {other:?}: expected none, 500 or hang\n"
            ));
        }
    };
    emulator.set_fault(fault);
    HttpResponse::NoContent().finish()
}
