//! Logs as one JSON object per line, in Elastic Common Schema.
//!
//! Each line carries `@timestamp`, `log.level`, `message`, `service.name`,
//! the event's own fields and the fields of the spans it happened in, so
//! Filebeat or Logstash ship it to Elasticsearch with no mapping work.
//! Fields are written with their dotted ECS names as given at the call
//! site: `tracing::info!(event.action = "checkout", "Loan created")`.
//!
//! `LOG_FORMAT=text` switches to tracing's human format; `RUST_LOG` sets
//! the filter (default `info`).

use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Checks `LOG_FORMAT` and `RUST_LOG` before [`init`], which falls back
/// to defaults: a value that is set but wrong should stop the service
/// with a message, not be ignored.
pub fn check_env() -> Result<(), crate::config::ConfigError> {
    let invalid = |name: &str, value: String, reason: String| crate::config::ConfigError::Invalid {
        name: name.to_owned(),
        value,
        reason,
    };
    if let Ok(format) = std::env::var("LOG_FORMAT") {
        if !matches!(format.trim(), "" | "json" | "text") {
            let reason = "must be json or text".to_owned();
            return Err(invalid("LOG_FORMAT", format, reason));
        }
    }
    if let Ok(filter) = std::env::var("RUST_LOG") {
        if let Err(e) = EnvFilter::try_new(&filter) {
            return Err(invalid("RUST_LOG", filter, e.to_string()));
        }
    }
    Ok(())
}

/// Installs the global subscriber for `service`. Calling it twice is
/// harmless: the second call changes nothing.
pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text = std::env::var("LOG_FORMAT").is_ok_and(|f| f == "text");
    let registry = tracing_subscriber::registry().with(filter);
    let result = if text {
        registry.with(tracing_subscriber::fmt::layer()).try_init()
    } else {
        registry.with(EcsLayer::new(service)).try_init()
    };
    drop(result);
}

/// A layer that writes every event as one ECS JSON line on stdout.
#[derive(Debug)]
pub struct EcsLayer {
    service: String,
}

impl EcsLayer {
    /// A layer stamping every line with `service.name = service`.
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
        }
    }

    /// The JSON line for one event, without the trailing newline.
    fn render<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> String
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut fields = Map::new();
        let now = chrono::Utc::now();
        fields.insert("@timestamp".into(), now.to_rfc3339().into());
        let level = event.metadata().level().as_str().to_lowercase();
        fields.insert("log.level".into(), level.into());
        fields.insert("service.name".into(), self.service.clone().into());
        fields.insert("log.logger".into(), event.metadata().target().into());

        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(map)) = span.extensions().get() {
                    for (k, v) in map {
                        fields.insert(k.clone(), v.clone());
                    }
                }
            }
        }

        event.record(&mut JsonVisitor(&mut fields));
        serde_json::to_string(&Value::Object(fields)).unwrap_or_default()
    }
}

struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        self.0.insert(field.name().to_owned(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, crate::problem::error_chain(value).into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl<S> Layer<S> for EcsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut map = Map::new();
        attrs.record(&mut JsonVisitor(&mut map));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(map));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(map)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(map));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = self.render(event, &ctx);
        line.push('\n');
        let mut out = std::io::stdout().lock();
        drop(out.write_all(line.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Captures rendered lines instead of printing them.
    struct Capture(Arc<Mutex<Vec<String>>>, EcsLayer);

    impl<S> Layer<S> for Capture
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        fn on_new_span(&self, a: &Attributes<'_>, id: &Id, c: Context<'_, S>) {
            self.1.on_new_span(a, id, c);
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let line = self.1.render(event, &ctx);
            self.0.lock().unwrap().push(line);
        }
    }

    #[test]
    fn lines_carry_ecs_fields_and_span_fields() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let layer = Capture(lines.clone(), EcsLayer::new("book-service"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("req", trace.id = "abc123");
            let _guard = span.enter();
            tracing::warn!(event.action = "checkout", "Copy refused");
        });

        let lines = lines.lock().unwrap();
        let v: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["message"], "Copy refused");
        assert_eq!(v["log.level"], "warn");
        assert_eq!(v["service.name"], "book-service");
        assert_eq!(v["event.action"], "checkout");
        assert_eq!(v["trace.id"], "abc123");
        assert!(v["@timestamp"].as_str().unwrap().contains('T'));
    }
}
