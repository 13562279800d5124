//! The route table: exact paths and prefixes, swapped whole on every deploy.

use std::collections::HashMap;
use std::sync::Arc;

use moat_runtime::{InvokeOptions, Prepared};

use crate::limits::Concurrency;
use crate::validate::InputRules;

/// How a route matches a request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    /// The path itself and everything below it; `""` matches every path.
    Prefix(String),
}

impl Match {
    /// Whether this route serves `path`. A prefix's boundary must fall on a `/`, so
    /// `/echo` serves `/echo/x` but not `/echoes`.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Match::Exact(p) => p == path,
            Match::Prefix(p) => path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

/// One serving function version, with everything checked before and after it runs.
pub struct Route {
    pub function: String,
    pub version: i64,
    pub matcher: Match,
    pub public: bool,
    pub prepared: Prepared,
    pub options: InvokeOptions,
    pub input: InputRules,
    pub max_body_bytes: u64,
    pub max_response_bytes: u64,
    /// `(count, per_secs)` per client.
    pub rate_limit: Option<(u32, u32)>,
    pub concurrency: Concurrency,
    /// What the function may reach beyond its sandbox.
    pub grants: moat_runtime::Grants,
    /// Data-loss prevention on what the function sends back; `None` is off.
    pub dlp: Option<Arc<crate::dlp::RouteDlp>>,
    /// What the [`crate::Observer`] keeps for this function (its metric series), so that
    /// reporting a request needs no lookup; the gateway only hands it back. `Arc::new(())`
    /// when the observer keeps nothing.
    pub stats: Arc<dyn std::any::Any + Send + Sync>,
}

/// An immutable snapshot of every route; the gateway swaps in a new one atomically.
#[derive(Default)]
pub struct RouteTable {
    exact: HashMap<String, Arc<Route>>,
    /// Longest prefix first, so the most specific route wins.
    prefixes: Vec<(String, Arc<Route>)>,
}

impl RouteTable {
    pub fn new(routes: impl IntoIterator<Item = Arc<Route>>) -> Self {
        let mut table = RouteTable::default();
        for route in routes {
            match &route.matcher {
                Match::Exact(p) => {
                    table.exact.insert(p.clone(), Arc::clone(&route));
                }
                Match::Prefix(p) => table.prefixes.push((p.clone(), Arc::clone(&route))),
            }
        }
        table
            .prefixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        table
    }

    /// The route serving `path`: an exact match first, else the longest matching prefix.
    pub fn lookup(&self, path: &str) -> Option<&Arc<Route>> {
        if let Some(r) = self.exact.get(path) {
            return Some(r);
        }
        self.prefixes
            .iter()
            .find(|(_, route)| route.matcher.matches(path))
            .map(|(_, route)| route)
    }

    /// Every route, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.exact
            .values()
            .chain(self.prefixes.iter().map(|(_, r)| r))
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Building a `Route` needs a compiled component; the integration tests cover lookup.
    fn matches(m: &Match, path: &str) -> bool {
        m.matches(path)
    }

    #[test]
    fn prefix_boundaries() {
        let echo = Match::Prefix("/echo".into());
        assert!(matches(&echo, "/echo"));
        assert!(matches(&echo, "/echo/"));
        assert!(matches(&echo, "/echo/a/b"));
        assert!(!matches(&echo, "/echoes"));
        assert!(!matches(&echo, "/"));
        let all = Match::Prefix(String::new());
        assert!(matches(&all, "/") && matches(&all, "/anything"));
        assert!(!matches(&Match::Exact("/hello".into()), "/hello/"));
    }
}
