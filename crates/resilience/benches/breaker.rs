//! The circuit breaker's cost per call on the success path, beside the bare
//! call and beside the `failsafe` and `tower-resilience` breakers doing the
//! same work, on one thread and on two threads sharing one breaker.
//!
//! Each measurement runs `iters` calls inside one future on a
//! current-thread tokio runtime, so the executor's cost is paid once. The
//! calls are ready at once: what is measured is the wrapper, not I/O. On
//! two threads, each thread makes `iters` calls at the same time through
//! the same breaker, and the slower thread's time is reported: with no
//! loss from contention it equals the single-thread time.
//!
//! Time is each thread's CPU time, not wall time: the machine is shared,
//! and a thread waiting for a core would otherwise count as slow. Cache
//! lines moving between cores and spinning on locks still count; a thread
//! asleep on a contended lock does not, which can only flatter the
//! breakers that take a shared lock. `BENCH_CLOCK=wall` measures wall
//! time instead, for a quiet machine.
//!
//! Run with `cargo bench -p lectern-resilience --bench breaker`.

use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::measurement::WallTime;
use criterion::{criterion_main, BenchmarkGroup, Criterion};
use failsafe::futures::CircuitBreaker as _;
use lectern_resilience::{Breaker, BreakerConfig};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_resilience::circuitbreaker::{CircuitBreakerLayer, SlidingWindowType};

type Io = std::io::Error;

/// The work being guarded: an answer that is ready at once.
async fn dependency(x: u64) -> Result<u64, Io> {
    Ok(black_box(x))
}

/// Something that can make one guarded call; cloned once per thread.
trait Caller: Clone + Send + 'static {
    fn call(&mut self, x: u64) -> impl Future<Output = u64>;
}

#[derive(Clone)]
struct Bare;

impl Caller for Bare {
    async fn call(&mut self, x: u64) -> u64 {
        dependency(x).await.unwrap()
    }
}

#[derive(Clone)]
struct Lectern(Breaker);

impl Caller for Lectern {
    async fn call(&mut self, x: u64) -> u64 {
        self.0.call(dependency(x)).await.unwrap()
    }
}

#[derive(Clone)]
struct Failsafe(
    failsafe::StateMachine<
        failsafe::failure_policy::OrElse<
            failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::EqualJittered>,
            failsafe::failure_policy::ConsecutiveFailures<failsafe::backoff::EqualJittered>,
        >,
        (),
    >,
);

impl Caller for Failsafe {
    async fn call(&mut self, x: u64) -> u64 {
        self.0.call(dependency(x)).await.unwrap()
    }
}

/// Any tower service over `u64`, called the tower way: ready, then call.
#[derive(Clone)]
struct Tower<S>(S);

impl<S> Caller for Tower<S>
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
{
    async fn call(&mut self, x: u64) -> u64 {
        let svc = self.0.ready().await.unwrap();
        svc.call(x).await.unwrap()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// True when `BENCH_CLOCK=wall` asks for wall time.
fn wall_clock() -> bool {
    std::env::var("BENCH_CLOCK").is_ok_and(|v| v == "wall")
}

/// Time for `iters` calls on this thread.
fn run<C: Caller>(caller: &mut C, rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let wall = std::time::Instant::now();
        let cpu = ThreadTime::now();
        for i in 0..iters {
            black_box(caller.call(i).await);
        }
        if wall_clock() {
            wall.elapsed()
        } else {
            cpu.elapsed()
        }
    })
}

/// Time for `iters` calls on each of `threads` threads at once (slowest).
fn run_parallel<C: Caller>(caller: &C, threads: usize, iters: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads));

    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut caller = caller.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let rt = runtime();
                barrier.wait();
                run(&mut caller, &rt, iters)
            })
        })
        .collect();

    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn lectern_breaker() -> Breaker {
    Breaker::new("bench", BreakerConfig::default())
}

fn failsafe_breaker() -> Failsafe {
    Failsafe(failsafe::Config::new().build())
}

/// tower-resilience's default window: the last 100 calls.
fn tower_resilience_count_layer() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .sliding_window_type(SlidingWindowType::CountBased)
        .sliding_window_size(100)
        .minimum_number_of_calls(5)
        .failure_rate_threshold(0.5)
        .slow_call_duration_threshold(Duration::from_secs(2))
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("a valid tower-resilience config")
}

/// tower-resilience with the same 10 s time window as Lectern's: it keeps
/// every call of the window, so its cost grows with the call rate.
fn tower_resilience_layer() -> CircuitBreakerLayer {
    CircuitBreakerLayer::builder()
        .sliding_window_type(SlidingWindowType::TimeBased)
        .sliding_window_duration(Duration::from_secs(10))
        .minimum_number_of_calls(5)
        .failure_rate_threshold(0.5)
        .slow_call_duration_threshold(Duration::from_secs(2))
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("a valid tower-resilience config")
}

fn bare_service(
) -> impl Service<u64, Response = u64, Error = Io, Future = impl Send> + Clone + Send + 'static {
    service_fn(dependency)
}

fn bench_all(group: &mut BenchmarkGroup<'_, WallTime>, threads: usize) {
    fn one<C: Caller>(
        group: &mut BenchmarkGroup<'_, WallTime>,
        name: &str,
        threads: usize,
        caller: C,
    ) {
        group.bench_function(name, |b| {
            let rt = runtime();
            let mut local = caller.clone();
            b.iter_custom(|iters| {
                if threads == 1 {
                    run(&mut local, &rt, iters)
                } else {
                    run_parallel(&caller, threads, iters)
                }
            });
        });
    }

    one(group, "bare call", threads, Bare);
    one(
        group,
        "lectern breaker (plain API)",
        threads,
        Lectern(lectern_breaker()),
    );
    one(group, "failsafe breaker", threads, failsafe_breaker());
    one(group, "bare tower service", threads, Tower(bare_service()));
    one(
        group,
        "lectern breaker (tower layer)",
        threads,
        Tower(lectern_breaker().layer().layer(bare_service())),
    );
    one(
        group,
        "tower-resilience breaker, last 100 calls (tower layer)",
        threads,
        Tower(tower_resilience_count_layer().layer(bare_service())),
    );
    one(
        group,
        "tower-resilience breaker, 10 s window (tower layer)",
        threads,
        Tower(tower_resilience_layer().layer(bare_service())),
    );
}

fn breaker_success_path(c: &mut Criterion) {
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("success path, {threads} thread(s)"));
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        bench_all(&mut group, threads);
        group.finish();
    }

    let clock = if wall_clock() {
        "wall"
    } else {
        "per-thread CPU"
    };
    println!("times above are {clock} time per call");
    println!(
        "lectern breaker: {} bytes of state per breaker on this machine",
        lectern_breaker().footprint()
    );
}

mod harness {
    //! Criterion's entry points, which carry no docs of their own.
    #![allow(missing_docs)]

    criterion::criterion_group!(benches, super::breaker_success_path);
}

criterion_main!(harness::benches);
