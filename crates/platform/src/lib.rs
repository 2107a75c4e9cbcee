//! What every Lectern service stands on.
//!
//! A service is an axum router plus the pieces here: configuration from the
//! environment ([`config`]), problem documents for every error
//! ([`problem`]), JSON logs in Elastic Common Schema ([`telemetry`]),
//! Prometheus metrics ([`metrics`]), health routes ([`health`]), the server
//! with its standard layers and graceful stop ([`server`]), storage on
//! SQLite or PostgreSQL ([`db`]), tokens and roles ([`auth`]), idempotent
//! POSTs ([`idempotency`]), calls to neighbours through the resilience
//! stack ([`client`]) with fallback caches ([`cache`]), and fault
//! injection for chaos testing ([`chaos`]).
//!
//! It knows nothing of books, members or loans.

pub mod auth;
pub mod cache;
pub mod chaos;
pub mod client;
pub mod config;
pub mod db;
pub mod health;
pub mod idempotency;
pub mod metrics;
pub mod problem;
pub mod server;
pub mod telemetry;
pub mod testing;

pub use problem::{ApiError, ApiJson};
