//! Prometheus metrics, read from the components at scrape time.
//!
//! Each component registers its own families, with help text, once per
//! registry ([`BreakerMetrics::register`], [`RetryMetrics::register`],
//! [`BulkheadMetrics::register`]) and then tracks any number of instances.
//! Nothing is counted twice: the collectors read the counters the
//! components keep anyway, so metrics add nothing to the call path. Labels
//! are bounded: the dependency's name, plus a state or outcome from a
//! fixed set. Instances are held weakly; a dropped one disappears at the
//! next scrape.
//!
//! ```
//! use lectern_resilience::metrics::BreakerMetrics;
//! use lectern_resilience::{Breaker, BreakerConfig};
//! use prometheus_client::registry::Registry;
//!
//! let mut registry = Registry::default();
//! let breakers = BreakerMetrics::register(&mut registry);
//! let breaker = Breaker::new("book-service", BreakerConfig::default());
//! breakers.track(&breaker);
//!
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains(
//!     r#"lectern_breaker_state{dependency="book-service",state="closed"} 1"#
//! ));
//! ```

use std::fmt;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::breaker::core::Core;
use crate::breaker::{Breaker, BreakerState};
use crate::bulkhead::{self, Bulkhead};
use crate::retry::{self, Retry, RetryStats};

/// A counter family: name, help, and how to read it from a component.
type Family<S> = (&'static str, &'static str, fn(&S) -> u64);

/// A list of weakly held instances, pruned as they go.
struct Tracked<T>(Arc<Mutex<Vec<Weak<T>>>>);

impl<T> Tracked<T> {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }

    fn add(&self, item: &Arc<T>) {
        let mut items = self.0.lock();
        items.retain(|w| w.strong_count() > 0);
        items.push(Arc::downgrade(item));
    }

    fn live(&self) -> Vec<Arc<T>> {
        let mut items = self.0.lock();
        items.retain(|w| w.strong_count() > 0);
        items.iter().filter_map(Weak::upgrade).collect()
    }
}

impl<T> Clone for Tracked<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> fmt::Debug for Tracked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("count", &self.0.lock().len())
            .finish()
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(&[(&str, &str)], i64)],
) -> fmt::Result {
    let gauge = ConstGauge::new(0i64);
    let mut family = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;

    for (labels, value) in series {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: &[(&[(&str, &str)], u64)],
) -> fmt::Result {
    let counter = ConstCounter::new(0u64);
    let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;

    for (labels, value) in series {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// Breaker state (one series per state, 1 for the current one) and call
/// outcomes, per dependency.
#[derive(Clone, Debug)]
pub struct BreakerMetrics {
    breakers: Tracked<Core>,
}

impl BreakerMetrics {
    /// Registers the breaker families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            breakers: Tracked::new(),
        };

        registry.register_collector(Box::new(metrics.clone()));
        metrics
    }

    /// Reports `breaker` from now on, while it lives.
    pub fn track<C>(&self, breaker: &Breaker<C>) {
        self.breakers.add(breaker.core());
    }
}

impl Collector for BreakerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let breakers = self.breakers.live();
        let mut states = Vec::new();
        let mut calls = Vec::new();

        for core in &breakers {
            let name = &*core.name;
            let current = core.state();
            for state in BreakerState::ALL {
                let labels = vec![("dependency", name), ("state", state.as_str())];
                states.push((labels, i64::from(state == current)));
            }
            let t = core.stats.totals();
            let outcomes = [
                ("success", t.successes),
                ("failure", t.failures),
                ("timeout", t.timeouts),
                ("ignored", t.ignored),
                ("rejected", t.rejected),
                ("fallback", t.fallbacks),
                ("late_success", t.late_successes),
                ("late_failure", t.late_failures),
            ];
            for (outcome, value) in outcomes {
                calls.push((vec![("dependency", name), ("outcome", outcome)], value));
            }
        }

        let states: Vec<_> = states.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        let calls: Vec<_> = calls.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        gauge(
            &mut encoder,
            "lectern_breaker_state",
            "Circuit breaker state: 1 for the current state, 0 for the others.",
            &states,
        )?;
        counter(
            &mut encoder,
            "lectern_breaker_calls",
            "Calls through the circuit breaker, by outcome.",
            &calls,
        )
    }
}

/// Requests, retries and refused retries, per dependency.
#[derive(Clone, Debug)]
pub struct RetryMetrics {
    retries: Tracked<retry::Shared>,
}

impl RetryMetrics {
    /// Registers the retry families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            retries: Tracked::new(),
        };

        registry.register_collector(Box::new(metrics.clone()));
        metrics
    }

    /// Reports `retry` from now on, while it lives.
    pub fn track(&self, retry: &Retry) {
        self.retries.add(retry.shared());
    }
}

impl Collector for RetryMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let retries: Vec<_> = self
            .retries
            .live()
            .into_iter()
            .map(Retry::from_shared)
            .collect();
        let labels: Vec<_> = retries.iter().map(|r| [("dependency", r.name())]).collect();
        let stats: Vec<_> = retries.iter().map(Retry::stats).collect();

        let families: [Family<RetryStats>; 4] = [
            (
                "lectern_retry_requests",
                "Requests sent through the retry layer.",
                |s| s.requests,
            ),
            ("lectern_retries", "Retries started.", |s| s.retries),
            (
                "lectern_retry_budget_refusals",
                "Retries the retry budget refused.",
                |s| s.budget_refusals,
            ),
            (
                "lectern_retry_deadline_refusals",
                "Retries refused because they could not finish before the deadline.",
                |s| s.deadline_refusals,
            ),
        ];
        for (name, help, pick) in families {
            let series: Vec<_> = labels
                .iter()
                .zip(&stats)
                .map(|(l, s)| (l.as_slice(), pick(s)))
                .collect();
            counter(&mut encoder, name, help, &series)?;
        }
        Ok(())
    }
}

/// Bulkhead calls in flight, queued and refused, per dependency.
#[derive(Clone, Debug)]
pub struct BulkheadMetrics {
    bulkheads: Tracked<bulkhead::Shared>,
}

impl BulkheadMetrics {
    /// Registers the bulkhead families in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            bulkheads: Tracked::new(),
        };

        registry.register_collector(Box::new(metrics.clone()));
        metrics
    }

    /// Reports `bulkhead` from now on, while it lives.
    pub fn track(&self, bulkhead: &Bulkhead) {
        self.bulkheads.add(bulkhead.shared());
    }
}

impl Collector for BulkheadMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let bulkheads: Vec<_> = self
            .bulkheads
            .live()
            .into_iter()
            .map(Bulkhead::from_shared)
            .collect();
        let labels: Vec<_> = bulkheads
            .iter()
            .map(|b| [("dependency", b.name())])
            .collect();
        let gauges = |pick: fn(&Bulkhead) -> usize| -> Vec<_> {
            bulkheads
                .iter()
                .zip(&labels)
                .map(|(b, l)| (l.as_slice(), i64::try_from(pick(b)).unwrap_or(i64::MAX)))
                .collect()
        };
        let rejected: Vec<_> = bulkheads
            .iter()
            .zip(&labels)
            .map(|(b, l)| (l.as_slice(), b.rejected()))
            .collect();

        gauge(
            &mut encoder,
            "lectern_bulkhead_in_flight",
            "Calls in flight in the bulkhead.",
            &gauges(Bulkhead::in_flight),
        )?;
        gauge(
            &mut encoder,
            "lectern_bulkhead_queued",
            "Calls waiting in the bulkhead's queue.",
            &gauges(Bulkhead::queued),
        )?;
        counter(
            &mut encoder,
            "lectern_bulkhead_rejected",
            "Calls the bulkhead refused because it was full.",
            &rejected,
        )
    }
}
