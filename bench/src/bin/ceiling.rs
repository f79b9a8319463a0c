//! The ceiling of the hit path: a minimal actix-web server that responds to every
//! `GET /lookup/{key}` with the same JSON body, read once from a file, on one worker.

use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// File whose bytes are the response body.
    #[arg(long)]
    body_file: std::path::PathBuf,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// The same header the service sends, named by a constant as the service names it.
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

async fn lookup(body: web::Data<Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
        .insert_header((X_CACHE, HeaderValue::from_static("hit")))
        .body(body.get_ref().clone())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    assert!(
        args.listen.ip().is_loopback(),
        "--listen must be a loopback address"
    );
    let body = Bytes::from(std::fs::read(&args.body_file)?);
    let body = web::Data::new(body);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(body.clone())
            .route("/lookup/{key}", web::get().to(lookup))
    })
    .workers(args.workers)
    // As the service sets it.
    .tcp_nodelay(true)
    .bind(args.listen)?;
    println!("CEILING_URL=http://{}", server.addrs()[0]);
    server.run().await
}
