//! What a breaker tells the world: events for subscribers and listeners,
//! and debug or trace lines for the log.
//!
//! Subscribing costs the breaker nothing until there is a subscriber:
//! without one, an event is only a (usually disabled) log line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::broadcast;

use super::stats::WindowCounts;
use super::{BreakerState, Outcome};

/// Events a broadcast subscriber can fall behind by before it loses some.
const CHANNEL_CAPACITY: usize = 1024;

/// Something that happened in a breaker.
#[derive(Clone, Debug, PartialEq)]
pub enum BreakerEvent {
    /// The breaker opened; calls are refused for `reopen_in`.
    Opened {
        /// How long until a trial call may go through.
        reopen_in: Duration,
        /// What opened it.
        cause: OpenCause,
    },
    /// The reset timeout passed; trial calls may go through.
    HalfOpened,
    /// Every trial call succeeded; the breaker closed.
    Closed,
    /// An operator forced a state (disabled, forced open, or reset to
    /// closed).
    Forced {
        /// The state forced.
        state: BreakerState,
    },
    /// A call succeeded.
    Success {
        /// How long it took.
        latency: Duration,
    },
    /// A call failed.
    Failure {
        /// How long it took.
        latency: Duration,
    },
    /// A call ran past the breaker's timeout; this counts as a failure.
    Timeout {
        /// The timeout reached.
        limit: Duration,
    },
    /// A call was refused without being sent.
    Rejected {
        /// The state that refused it.
        state: BreakerState,
    },
    /// A fallback ran in place of a failed or refused call.
    Fallback,
    /// A call that had timed out finished after all; its result was
    /// discarded.
    LateResult {
        /// What the discarded result would have counted as.
        outcome: Outcome,
    },
}

/// Why a breaker opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenCause {
    /// The window's failure rate or slow-call rate reached its threshold.
    Window(WindowCounts),
    /// A trial call failed in half-open.
    TrialFailed,
}

/// Receives a breaker's events as they happen, on the caller's thread.
/// Keep `on_event` short: it runs inside the call it reports.
pub trait BreakerListener: Send + Sync + 'static {
    /// `event` happened in the breaker called `breaker`.
    fn on_event(&self, breaker: &str, event: &BreakerEvent);
}

/// A breaker's listeners and broadcast channel.
pub(crate) struct Events {
    name: Arc<str>,
    active: AtomicBool,
    listeners: RwLock<Vec<Arc<dyn BreakerListener>>>,
    channel: OnceLock<broadcast::Sender<BreakerEvent>>,
}

impl Events {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            active: AtomicBool::new(false),
            listeners: RwLock::new(Vec::new()),
            channel: OnceLock::new(),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<BreakerEvent> {
        let sender = self
            .channel
            .get_or_init(|| broadcast::channel(CHANNEL_CAPACITY).0);
        let receiver = sender.subscribe();

        self.active.store(true, Ordering::Release);
        receiver
    }

    pub(crate) fn listen(&self, listener: Arc<dyn BreakerListener>) {
        self.listeners.write().push(listener);
        self.active.store(true, Ordering::Release);
    }

    pub(crate) fn emit(&self, event: BreakerEvent) {
        self.log(&event);

        if !self.active.load(Ordering::Acquire) {
            return;
        }
        for listener in self.listeners.read().iter() {
            listener.on_event(&self.name, &event);
        }
        if let Some(sender) = self.channel.get() {
            // No receiver left is not an error: nobody is listening.
            let _ = sender.send(event);
        }
    }

    fn log(&self, event: &BreakerEvent) {
        let name = &*self.name;

        match event {
            BreakerEvent::Success { latency } => {
                tracing::trace!(breaker = name, ?latency, "Call succeeded");
            }
            BreakerEvent::Failure { latency } => {
                tracing::debug!(breaker = name, ?latency, "Call failed");
            }
            BreakerEvent::Opened { reopen_in, cause } => {
                tracing::debug!(breaker = name, ?reopen_in, ?cause, "Breaker opened");
            }
            BreakerEvent::HalfOpened => {
                tracing::debug!(breaker = name, "Breaker half-open");
            }
            BreakerEvent::Closed => {
                tracing::debug!(breaker = name, "Breaker closed");
            }
            other => {
                tracing::debug!(breaker = name, event = ?other, "Breaker event");
            }
        }
    }
}
