//! book-service's own metrics, beside the HTTP families every service
//! has: records written by imports, and availability lookups by outcome.

use lectern_platform::metrics::Metrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The label of both families: what happened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    /// `imported` / `updated`, or `known` / `unknown`.
    pub(crate) outcome: &'static str,
}

/// The families, registered once per process.
#[derive(Debug, Clone, Default)]
pub(crate) struct BookMetrics {
    import_records: Family<Outcome, Counter>,
    availability: Family<Outcome, Counter>,
}

impl BookMetrics {
    /// Registers the families in `metrics`.
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "book_import_records",
            "Records written by catalogue imports, new or updated",
            this.import_records.clone(),
        );
        metrics.register(
            "book_availability_lookups",
            "Active-loan lookups at borrowing-service, known or unknown",
            this.availability.clone(),
        );
        this
    }

    /// Counts an import's records.
    pub(crate) fn imported(&self, new: u64, updated: u64) {
        self.import_records
            .get_or_create(&Outcome {
                outcome: "imported",
            })
            .inc_by(new);
        self.import_records
            .get_or_create(&Outcome { outcome: "updated" })
            .inc_by(updated);
    }

    /// Counts one availability lookup.
    pub(crate) fn lookup(&self, known: bool) {
        let outcome = if known { "known" } else { "unknown" };
        self.availability.get_or_create(&Outcome { outcome }).inc();
    }
}
