//! Accepting connections, serving them, and stopping gracefully.
//!
//! Each connection is served by hyper (HTTP/1.1, or HTTP/2 with prior
//! knowledge) with a service that calls [`Gateway::handle`] of the
//! configuration in force directly: no router framework and no boxed
//! future per request. On shutdown the listener closes, idle connections
//! close, and requests in flight finish within `shutdown_timeout`.
//!
//! With `worker_threads` (one per core by default) connections are served
//! by that many threads, each with a single-threaded runtime of its own
//! that serves a connection start to end, as nginx's worker processes
//! do: a request never hops between threads, which on a small machine is
//! worth twice the throughput of a work-stealing runtime. One acceptor,
//! on the caller's runtime, hands each new connection to the worker with
//! the fewest open ones (threads racing for `accept` on one listener can
//! leave one idle while the other takes every connection). The workers
//! share one configuration and one live state (least connections,
//! health, ejections) through atomics.
//!
//! [`Gateway::handle`]: crate::gateway::Gateway::handle

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::client;
use crate::gateway::Peer;
use crate::reload::Shared;

/// Pause after a failed `accept` (too many open files, ...), so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A connection handed to a worker.
type Handoff = (std::net::TcpStream, SocketAddr);

/// Serves the gateway in force on `listener`, on the caller's runtime,
/// until `shutdown` completes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut connections = Connections::new(Arc::clone(&shared));
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => connections.serve(stream, peer, None),
            Err(error) => backoff(&error).await,
        }
    }

    drop(listener);
    connections.drain().await;
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
    let mut pool = Vec::with_capacity(workers);
    for index in 0..workers {
        pool.push(Worker::start(index, &shared)?);
    }

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => hand_off(&pool, stream, peer),
            Err(error) => backoff(&error).await,
        }
    }

    drop(listener);
    let finished: Vec<_> = pool.into_iter().map(Worker::finish).collect();
    for finish in finished {
        let _ = finish.await;
    }

    Ok(())
}

/// Gives a new connection to the worker with the fewest open ones.
fn hand_off(pool: &[Worker], stream: TcpStream, peer: SocketAddr) {
    let Some(worker) = pool.iter().min_by_key(|w| w.load()) else {
        return;
    };
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%peer, %error, "Accepted connection unusable");
            return;
        }
    };

    worker.open.fetch_add(1, Ordering::Relaxed);
    if worker.sender.send((stream, peer)).is_err() {
        worker.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn backoff(error: &std::io::Error) {
    tracing::warn!(%error, "Accepting a connection failed");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// One worker thread: its connection queue and open-connection count.
struct Worker {
    sender: mpsc::UnboundedSender<Handoff>,
    open: Arc<AtomicUsize>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl Worker {
    /// Starts the thread and its runtime; worker 0 also runs the
    /// background checks.
    fn start(index: usize, shared: &Arc<Shared>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (sender, incoming) = mpsc::unbounded_channel();
        let (done, finished) = tokio::sync::oneshot::channel();
        let open = Arc::new(AtomicUsize::new(0));
        let serving = Serving {
            index,
            shared: Arc::clone(shared),
            incoming,
            open: Arc::clone(&open),
        };

        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || {
                runtime.block_on(serving.run());
                let _ = done.send(());
            })?;
        if index == 0 {
            shared.start(handle);
        }

        Ok(Self {
            sender,
            open,
            done: finished,
        })
    }

    fn load(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// No more connections: the worker drains and ends.
    fn finish(self) -> tokio::sync::oneshot::Receiver<()> {
        drop(self.sender);
        self.done
    }
}

/// What a worker thread runs.
struct Serving {
    index: usize,
    shared: Arc<Shared>,
    incoming: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
}

impl Serving {
    async fn run(mut self) {
        client::set_worker(self.index);
        let mut connections = Connections::new(self.shared);

        while let Some((stream, peer)) = self.incoming.recv().await {
            let open = Open(Arc::clone(&self.open));
            match TcpStream::from_std(stream) {
                Ok(stream) => connections.serve(stream, peer, Some(open)),
                Err(error) => {
                    tracing::debug!(%peer, %error, "Connection unusable");
                }
            }
        }

        connections.drain().await;
    }
}

/// Counts a worker's open connection until dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connections one runtime serves, and how to stop them.
struct Connections {
    shared: Arc<Shared>,
    header_timeout: Duration,
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
}

impl Connections {
    fn new(shared: Arc<Shared>) -> Self {
        let header_timeout = shared.current().header_timeout();

        Self {
            shared,
            header_timeout,
            builder: builder(header_timeout),
            graceful: GracefulShutdown::new(),
        }
    }

    /// Serves one connection on a task of the current runtime.
    fn serve(
        &mut self,
        stream: TcpStream,
        addr: SocketAddr,
        open: Option<Open>,
    ) {
        let now = self.shared.current().header_timeout();
        if now != self.header_timeout {
            // A reload changed it: new connections get the new one.
            self.header_timeout = now;
            self.builder = builder(now);
        }

        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&self.shared);
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

        let connection = self
            .builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = self.graceful.watch(connection);

        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "Client connection ended");
            }
            drop(open);
        });
    }

    /// Closes idle connections and waits for requests in flight, at most
    /// `shutdown_timeout`.
    async fn drain(self) {
        let limit = self.shared.current().shutdown_timeout();
        drain(self.graceful, limit).await;
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
