//! Which part of the gateway answers a path.
//!
//! The gateway's own paths (`/health...`, `/metrics`, `/admin/upstreams`)
//! match exactly; `/internal` and everything below it is refused and never
//! forwarded; a configured prefix matches itself and every path below it,
//! at a segment boundary. Anything else is not found.
//!
//! Each answer carries a [`RouteId`], the index of the `route` label that
//! metrics use: a bounded set, never the raw path.

use crate::config::RouteConfig;

/// Index of a route template (the metrics' `route` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteId(pub(crate) usize);

/// What answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/health/live`.
    Live,
    /// `/health/ready`.
    Ready,
    /// `/health`.
    Health,
    /// `/metrics`.
    Metrics,
    /// `/admin/upstreams`.
    Admin,
    /// Under `/internal`: 404, never forwarded.
    Internal,
    /// No route: 404.
    NotFound,
    /// Forward to the upstream with this index.
    Proxy(usize),
}

/// The gateway's own routes, in `RouteId` order, then the configured ones.
const OWN: [(&str, Target); 5] = [
    ("/health/live", Target::Live),
    ("/health/ready", Target::Ready),
    ("/health", Target::Health),
    ("/metrics", Target::Metrics),
    ("/admin/upstreams", Target::Admin),
];

const INTERNAL: RouteId = RouteId(OWN.len());
const UNMATCHED: RouteId = RouteId(OWN.len() + 1);
const FIRST_PROXY: usize = OWN.len() + 2;

/// The route table.
#[derive(Debug)]
pub(crate) struct Router {
    prefixes: Box<[(Box<str>, usize)]>,
}

impl Router {
    /// Routes each configured prefix to the index `upstream` gives its
    /// upstream name.
    pub(crate) fn new(
        routes: &[RouteConfig],
        upstream: impl Fn(&str) -> usize,
    ) -> Self {
        let prefixes = routes
            .iter()
            .map(|r| (r.prefix.as_str().into(), upstream(&r.upstream)))
            .collect();

        Self { prefixes }
    }

    /// Label values by [`RouteId`].
    pub(crate) fn templates(&self) -> Vec<String> {
        let own = OWN.iter().map(|(path, _)| (*path).to_owned());
        let fixed = ["/internal".to_owned(), "unmatched".to_owned()];
        let prefixes = self.prefixes.iter().map(|(p, _)| p.to_string());

        own.chain(fixed).chain(prefixes).collect()
    }

    /// What answers `path`, and its metrics route.
    pub(crate) fn resolve(&self, path: &str) -> (RouteId, Target) {
        if let Some(i) = OWN.iter().position(|(p, _)| *p == path) {
            return (RouteId(i), OWN[i].1);
        }

        if is_under(path, "/internal") {
            return (INTERNAL, Target::Internal);
        }

        let found = self.prefixes.iter().position(|(p, _)| is_under(path, p));
        match found {
            Some(i) => {
                (RouteId(FIRST_PROXY + i), Target::Proxy(self.prefixes[i].1))
            }
            None => (UNMATCHED, Target::NotFound),
        }
    }

    /// The configured prefix of a route, if it is one.
    pub(crate) fn prefix(&self, route: RouteId) -> Option<&str> {
        let i = route.0.checked_sub(FIRST_PROXY)?;

        self.prefixes.get(i).map(|(p, _)| &**p)
    }
}

/// Whether `path` is `prefix` or below it.
fn is_under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Whether a path has a `.` or `..` segment, written plainly or
/// percent-encoded, which could climb out of a route's prefix at the
/// upstream (`/api/books/../../internal/...`).
pub(crate) fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(is_dots)
}

fn is_dots(segment: &str) -> bool {
    let mut rest = segment.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
        dots += 1;
    }

    dots == 1 || dots == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let routes = [("/api/books", "book"), ("/api/loans", "loans")].map(
            |(prefix, upstream)| RouteConfig {
                prefix: prefix.into(),
                upstream: upstream.into(),
            },
        );

        Router::new(&routes, |name| usize::from(name == "loans"))
    }

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        let r = router();

        assert_eq!(r.resolve("/api/books").1, Target::Proxy(0));
        assert_eq!(r.resolve("/api/books/").1, Target::Proxy(0));
        assert_eq!(r.resolve("/api/books/1/copies").1, Target::Proxy(0));
        assert_eq!(r.resolve("/api/loans/overdue").1, Target::Proxy(1));
        assert_eq!(r.resolve("/api/bookshelf").1, Target::NotFound);
        assert_eq!(r.resolve("/").1, Target::NotFound);
    }

    #[test]
    fn internal_paths_are_refused() {
        let r = router();

        assert_eq!(r.resolve("/internal").1, Target::Internal);
        assert_eq!(r.resolve("/internal/loans/x").1, Target::Internal);
        assert_eq!(r.resolve("/internals").1, Target::NotFound);
    }

    #[test]
    fn route_labels_are_templates_not_paths() {
        let r = router();
        let labels = r.templates();

        let (id, _) = r.resolve("/api/loans/0193-abcd");
        assert_eq!(labels[id.0], "/api/loans");
        assert_eq!(r.prefix(id), Some("/api/loans"));

        let (id, _) = r.resolve("/nothing/here");
        assert_eq!(labels[id.0], "unmatched");
        assert_eq!(r.prefix(id), None);
    }

    #[test]
    fn dot_segments_are_found_even_when_encoded() {
        assert!(has_dot_segment("/api/books/../internal"));
        assert!(has_dot_segment("/api/books/%2e%2E/internal"));
        assert!(has_dot_segment("/api/books/."));
        assert!(!has_dot_segment("/api/books/..."));
        assert!(!has_dot_segment("/api/books/v1.2"));
        assert!(!has_dot_segment("/api/books/%2f"));
    }
}
