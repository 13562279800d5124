//! Gauges read when `/metrics` is scraped, never on the request path: in-flight and queued
//! invocations per function (from the route table's concurrency slots), the node's resident
//! memory, the compiled-artifact cache on disk, and the exporters' counters.

use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Weak;

use moat_gateway::Gateway;

/// Held by `Metrics`, so what reaches back to it (the gateway's observer, the audit writer)
/// is held weakly: a cycle would keep the store open past the node's end, and SQLite would
/// never fold its WAL back into the database.
pub struct Sources {
    pub gateway: Weak<Gateway>,
    /// `<data-dir>/compiled`, the sealed compiled artifacts.
    pub compiled: PathBuf,
    pub otlp: Option<std::sync::Arc<crate::otlp::Exporter>>,
    pub line_export: Option<std::sync::Arc<crate::export::LineExport>>,
    pub limits: Weak<crate::limits_audit::LimitAudit>,
}

impl Sources {
    pub fn render(&self, out: &mut String) {
        let mut routes: Vec<_> = match self.gateway.upgrade() {
            Some(gateway) => gateway
                .routes()
                .iter()
                .map(|r| {
                    let c = &r.concurrency;
                    (r.function.clone(), c.in_flight(), c.queued())
                })
                .collect(),
            None => Vec::new(),
        };
        routes.sort();
        let _ = writeln!(
            out,
            "# HELP moat_invocations_in_flight Invocations holding a concurrency slot now, by function.\n# TYPE moat_invocations_in_flight gauge"
        );
        for (f, n, _) in &routes {
            let _ = writeln!(out, "moat_invocations_in_flight{{function=\"{f}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP moat_queue_depth Requests waiting for a concurrency slot now, by function.\n# TYPE moat_queue_depth gauge"
        );
        for (f, _, n) in &routes {
            let _ = writeln!(out, "moat_queue_depth{{function=\"{f}\"}} {n}");
        }
        if let Some(rss) = resident_bytes() {
            let _ = writeln!(
                out,
                "# HELP moat_process_resident_memory_bytes Resident memory of the node process (/proc/self/statm).\n# TYPE moat_process_resident_memory_bytes gauge\nmoat_process_resident_memory_bytes {rss}"
            );
        }
        let (count, bytes) = artifact_cache(&self.compiled);
        let _ = writeln!(
            out,
            "# HELP moat_compiled_artifacts Sealed compiled artifacts on disk.\n# TYPE moat_compiled_artifacts gauge\nmoat_compiled_artifacts {count}\n\
             # HELP moat_compiled_artifact_bytes Bytes of sealed compiled artifacts on disk.\n# TYPE moat_compiled_artifact_bytes gauge\nmoat_compiled_artifact_bytes {bytes}"
        );
        if let Some(limits) = self.limits.upgrade() {
            limits.render(out);
        }
        if let Some(otlp) = &self.otlp {
            otlp.render(out);
        }
        if let Some(export) = &self.line_export {
            export.render(out);
        }
    }
}

/// Resident set size in bytes: the second field of `/proc/self/statm`, in pages.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

/// Files and bytes in the compiled-artifact directory (one file per digest and engine).
fn artifact_cache(dir: &std::path::Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .fold((0, 0), |(n, b), m| (n + 1, b + m.len()))
}
