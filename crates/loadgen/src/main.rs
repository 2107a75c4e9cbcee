//! `lectern-load`: drives a running Lectern through its gateway and reports
//! requests per second and latency percentiles.
//!
//! It is a benchmark tool, not a test: it asserts nothing about speed. Two
//! scenarios: `lookup` reads `GET /api/books/{id}` over the catalogue's
//! ids; `checkout` has each connection check a copy out and return it in a
//! loop, timing the checkout (`POST /api/loans`) alone.
//!
//! Limitation: it runs on the same machine as the system it measures, so
//! on two cores it takes CPU from the services; numbers are comparable
//! between runs on one machine, not absolute.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Load generator for Lectern's gateway.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Lookup)]
    scenario: Scenario,
    /// Concurrent connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Admin username, for the checkout scenario.
    #[arg(long, default_value = "admin")]
    user: String,
    /// Admin password, for the checkout scenario.
    #[arg(long, env = "LECTERN_PASSWORD", default_value = "")]
    password: String,
}

/// A workload.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    /// `GET /api/books/{id}`.
    Lookup,
    /// `POST /api/loans` then `POST /api/loans/{id}/return`.
    Checkout,
}

/// Microseconds from 1 µs to one minute, three significant digits; a
/// slower request is recorded as one minute.
fn latency_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// What one connection measured.
struct Tally {
    latencies: Histogram<u64>,
    errors: u64,
}

impl Tally {
    fn new() -> Result<Self> {
        Ok(Self {
            latencies: latency_histogram()?,
            errors: 0,
        })
    }

    fn record(&mut self, start: Instant, ok: bool) {
        let micros = start.elapsed().as_micros();
        self.latencies
            .saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
        if !ok {
            self.errors += 1;
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();

    let tallies = match args.scenario {
        Scenario::Lookup => run_lookup(&client, &args, deadline).await?,
        Scenario::Checkout => run_checkout(&client, &args, deadline).await?,
    };
    report(&args, tallies, started.elapsed())
}

async fn run_lookup(
    client: &reqwest::Client,
    args: &Args,
    deadline: Instant,
) -> Result<Vec<Tally>> {
    let ids = book_ids(client, &args.url).await?;
    let mut tasks = Vec::new();
    for worker in 0..args.connections {
        let client = client.clone();
        let urls: Vec<String> = ids
            .iter()
            .map(|id| format!("{}/api/books/{id}", args.url))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new()?;
            let mut i = worker;
            while Instant::now() < deadline {
                let start = Instant::now();
                let ok = get_ok(&client, &urls[i % urls.len()]).await;
                tally.record(start, ok);
                i += 1;
            }
            anyhow::Ok(tally)
        }));
    }
    collect(tasks).await
}

async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn book_ids(client: &reqwest::Client, url: &str) -> Result<Vec<String>> {
    let page: Value = client
        .get(format!("{url}/api/books?limit=100"))
        .send()
        .await?
        .json()
        .await?;
    let ids: Vec<String> = page["items"]
        .as_array()
        .context("search answer has no items")?
        .iter()
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect();
    if ids.is_empty() {
        bail!("the catalogue is empty");
    }
    Ok(ids)
}

async fn run_checkout(
    client: &reqwest::Client,
    args: &Args,
    deadline: Instant,
) -> Result<Vec<Tally>> {
    let token = login(client, args).await?;
    let barcodes = loanable_barcodes(client, &args.url).await?;
    if barcodes.len() < args.connections {
        bail!(
            "{} loanable copies for {} connections",
            barcodes.len(),
            args.connections
        );
    }
    let run = Instant::now().elapsed().as_nanos();
    let mut tasks = Vec::new();
    for (worker, barcode) in barcodes.into_iter().take(args.connections).enumerate() {
        let client = client.clone();
        let url = args.url.clone();
        let token = token.clone();
        let card = format!("BENCH-{run}-{worker}-{}", std::process::id());
        tasks.push(tokio::spawn(async move {
            create_member(&client, &url, &token, &card).await?;
            checkout_loop(&client, &url, &token, &card, &barcode, deadline).await
        }));
    }
    collect(tasks).await
}

async fn checkout_loop(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    card: &str,
    barcode: &str,
    deadline: Instant,
) -> Result<Tally> {
    let mut tally = Tally::new()?;
    while Instant::now() < deadline {
        let start = Instant::now();
        let answer = client
            .post(format!("{url}/api/loans"))
            .bearer_auth(token)
            .json(&json!({ "member": card, "barcode": barcode }))
            .send()
            .await;
        let loan: Option<Value> = match answer {
            Ok(r) if r.status().as_u16() == 201 => r.json().await.ok(),
            _ => None,
        };
        tally.record(start, loan.is_some());
        let Some(id) = loan.as_ref().and_then(|l| l["id"].as_str()) else {
            continue;
        };
        client
            .post(format!("{url}/api/loans/{id}/return"))
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(tally)
}

async fn login(client: &reqwest::Client, args: &Args) -> Result<String> {
    let answer: Value = client
        .post(format!("{}/api/auth/login", args.url))
        .json(&json!({ "username": args.user, "password": args.password }))
        .send()
        .await?
        .error_for_status()
        .context("sign-in failed: set LECTERN_PASSWORD")?
        .json()
        .await?;
    answer["token"]
        .as_str()
        .map(str::to_owned)
        .context("no token")
}

async fn create_member(client: &reqwest::Client, url: &str, token: &str, card: &str) -> Result<()> {
    let body = json!({
        "card_number": card,
        "name": "Bench Member",
        "email": "bench@example.org",
        "loan_limit": 100,
    });
    client
        .post(format!("{url}/api/members"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .error_for_status()
        .context("creating a bench member")?;
    Ok(())
}

async fn loanable_barcodes(client: &reqwest::Client, url: &str) -> Result<Vec<String>> {
    let mut barcodes = Vec::new();
    for id in book_ids(client, url).await? {
        let book: Value = client
            .get(format!("{url}/api/books/{id}"))
            .send()
            .await?
            .json()
            .await?;
        for copy in book["copies"].as_array().into_iter().flatten() {
            if copy["loanable"].as_bool() == Some(true) {
                if let Some(b) = copy["barcode"].as_str() {
                    barcodes.push(b.to_owned());
                }
            }
        }
    }
    Ok(barcodes)
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Result<Tally>>>) -> Result<Vec<Tally>> {
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await??);
    }
    Ok(tallies)
}

fn report(args: &Args, tallies: Vec<Tally>, elapsed: Duration) -> Result<()> {
    let mut all = latency_histogram()?;
    let mut errors = 0;
    for tally in tallies {
        all.add(&tally.latencies)?;
        errors += tally.errors;
    }
    let count = all.len();
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "scenario={:?} connections={} seconds={:.1} requests={count} \
         errors={errors} rps={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        args.scenario,
        args.connections,
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        all.max() as f64 / 1000.0,
    );
    Ok(())
}
