//! Accepting connections, serving them, and stopping gracefully.
//!
//! Each connection is served by hyper (HTTP/1.1, or HTTP/2 with prior
//! knowledge) with a service that calls [`Gateway::handle`] of the
//! configuration in force directly: no router framework and no boxed
//! future per request. On shutdown the listener closes, idle connections
//! close, and requests in flight finish within `shutdown_timeout`.
//!
//! With `worker_threads` (one per core by default) the listener is shared
//! by that many threads, each with a single-threaded runtime of its own
//! that accepts connections and serves them start to end, as nginx's
//! worker processes do: a request never hops between threads, which on
//! a small machine is worth twice the throughput of a work-stealing
//! runtime. They share one configuration and one live state (least
//! connections, health, ejections) through atomics.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::client;
use crate::gateway::Peer;
use crate::reload::Shared;

/// Pause after a failed `accept` (too many open files, ...), so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the gateway in force on `listener` until `shutdown` completes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut header_timeout = shared.current().header_timeout();
    let mut builder = builder(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };

        match accepted {
            Ok((stream, peer)) => {
                let now = shared.current().header_timeout();
                if now != header_timeout {
                    // A reload changed it: new connections get the new one.
                    header_timeout = now;
                    builder = self::builder(header_timeout);
                }
                serve_one(&builder, &graceful, &shared, stream, peer);
            }
            Err(error) => {
                tracing::warn!(%error, "Accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }

    drop(listener);
    let drain_timeout = shared.current().shutdown_timeout();
    drain(graceful, drain_timeout).await;
}

/// Serves on `workers` threads of their own until `shutdown` completes;
/// background checks run on the first. Returns when every worker has
/// drained.
pub(crate) async fn run_workers(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    workers: usize,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut finished = Vec::with_capacity(workers);

    for index in 0..workers {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if index == 0 {
            shared.start(runtime.handle().clone());
        }
        let worker = Worker {
            index,
            listener: listener.try_clone()?,
            shared: Arc::clone(&shared),
            stopped: stopped.clone(),
        };
        let (done, finish) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                runtime.block_on(worker.run());
                let _ = done.send(());
            });
        if let Err(error) = thread {
            let _ = stop.send(true);
            return Err(error);
        }
        finished.push(finish);
    }
    drop(listener);

    shutdown.await;
    let _ = stop.send(true);
    for finish in finished {
        let _ = finish.await;
    }

    Ok(())
}

/// One worker thread's share of the serving.
struct Worker {
    index: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stopped: tokio::sync::watch::Receiver<bool>,
}

impl Worker {
    async fn run(self) {
        client::set_worker(self.index);
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "Worker could not use the listener");
                return;
            }
        };
        let mut stopped = self.stopped;
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };

        run(self.shared, listener, shutdown).await;
    }
}

fn builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());

    builder
}

fn serve_one(
    builder: &auto::Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    shared: &Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let shared = Arc::clone(shared);
    let peer = Arc::new(Peer::new(addr));
    let service = service_fn(move |request| {
        let gateway = shared.current();
        let peer = Arc::clone(&peer);
        async move {
            Ok::<_, std::convert::Infallible>(
                gateway.handle(request, &peer).await,
            )
        }
    });

    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .into_owned();
    let connection = graceful.watch(connection);

    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%addr, error = %error, "Client connection ended");
        }
    });
}

async fn drain(graceful: GracefulShutdown, limit: Duration) {
    let open = graceful.count();
    tracing::info!(
        event.action = "gateway-stopping",
        connections = open,
        "Gateway stopping; finishing requests in flight"
    );

    if tokio::time::timeout(limit, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            event.action = "gateway-stop-timeout",
            "Requests still in flight at shutdown_timeout were abandoned"
        );
    }
}
