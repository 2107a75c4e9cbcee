//! Runs the gateway alone from a TOML file, as `lectern serve gateway`
//! does, for benchmarks (`bench/gateway.sh`) and trials:
//!
//! ```text
//! cargo run --release -p lectern-gateway --example serve -- FILE ADDR
//! ```
//!
//! SIGHUP reloads FILE; SIGINT or SIGTERM stops gracefully.

use std::net::SocketAddr;

use lectern_gateway::{reload_on_sighup, GatewayConfig, GatewayServer};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: serve FILE ADDR";
    let path = args.next().ok_or(usage)?;
    let addr: SocketAddr = args.next().ok_or(usage)?.parse()?;

    let server = GatewayServer::new(&GatewayConfig::load(&path)?)?;
    let _hangups = reload_on_sighup(server.reload_handle(), &path)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut terminate = signal(SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };

    server.serve(listener, stop).await?;
    Ok(())
}
