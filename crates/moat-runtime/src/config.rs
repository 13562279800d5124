//! The config-and-secrets capability: `wasi:config/store` (0.2.0-rc.1), serving a
//! function's `[config]` values and the secrets it is granted — nothing else is visible to
//! `get` or `get-all` — and recording which secrets the function actually reads, for
//! `moat iam review`.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::host::Host;

mod bindings {
    // The interface of the wasi-config proposal (the version wasmtime 48 ships).
    wasmtime::component::bindgen!({
        inline: "
            package wasi:config@0.2.0-rc.1;

            interface store {
                variant error {
                    upstream(string),
                    io(string),
                }
                get: func(key: string) -> result<option<string>, error>;
                get-all: func() -> result<list<tuple<string, string>>, error>;
            }

            world imports {
                import store;
            }
        ",
        world: "wasi:config/imports",
    });
}

use bindings::wasi::config::store;

/// Receives the permissions a function actually used (aggregated by the node).
pub trait UsageObserver: Send + Sync {
    fn used(&self, function: &str, action: &'static str, resource: &str);
}

/// Told when a function asks by name for a key it cannot see, so that asking for an
/// existing secret it was not granted (or that a guardrail forbids) is recorded as a denial.
pub trait AbsentKeyObserver: Send + Sync {
    fn absent(&self, function: &str, key: &str);
}

/// What one invocation may read.
#[derive(Default)]
pub struct ConfigView {
    /// `[config]` values and granted secrets, in one list as the guest sees them.
    pub variables: Vec<(String, String)>,
    /// Which of `variables` are secrets (their reads are recorded).
    pub secrets: BTreeSet<String>,
    pub function: String,
    pub usage: Option<Arc<dyn UsageObserver>>,
    pub absent: Option<Arc<dyn AbsentKeyObserver>>,
}

impl ConfigView {
    fn record(&self, key: &str) {
        if let Some(usage) = &self.usage
            && self.secrets.contains(key)
        {
            usage.used(&self.function, "secret:read", key);
        }
    }
}

impl store::Host for Host {
    fn get(&mut self, key: String) -> Result<Option<String>, store::Error> {
        let view = self.config_view();
        let value = view
            .variables
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone());
        if value.is_some() {
            view.record(&key);
        } else if let Some(absent) = &view.absent {
            absent.absent(&view.function, &key);
        }
        Ok(value)
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, store::Error> {
        let view = self.config_view();
        for (k, _) in &view.variables {
            view.record(k);
        }
        Ok(view.variables.clone())
    }
}

/// Links `wasi:config/store`.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<Host>) -> wasmtime::Result<()> {
    store::add_to_linker::<Host, wasmtime::component::HasSelf<Host>>(linker, |h| h)
}
