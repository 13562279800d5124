//! Benchmark: the cost of one authorization decision with 1,000 functions' policies and 20
//! guardrails loaded, beside a baseline of one function and no guardrail, in the same run.
//! Prints a table of p50/p99 per decision. Run: `cargo run --release -p moat-policy --example authz_bench`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary"
)]

use std::time::Instant;

use moat_policy::{FunctionGrants, HostRequest, PolicyEngine};

fn engine(functions: usize, guardrails: usize) -> PolicyEngine {
    let mut e = PolicyEngine::new().unwrap();
    let rails: Vec<(String, String)> = (0..guardrails)
        .map(|i| {
            (
                format!("g{i}"),
                format!(
                    r#"forbid(principal, action == Action::"http:request", resource) when {{ resource.name like "*.blocked{i}.example" }};
                       forbid(principal, action == Action::"secret:read", resource) when {{ resource.name like "root{i}-*" }};"#
                ),
            )
        })
        .collect();
    e.set_guardrails(rails).unwrap();
    for f in 0..functions {
        e.set_grants(
            &format!("fn-{f}"),
            FunctionGrants {
                hosts: vec![
                    (true, format!("api{f}.example.com"), 443),
                    (true, "*.shared.example.com".into(), 443),
                ],
                secrets: vec![format!("key-{f}")],
                buckets: vec![format!("bucket-{f}")],
            },
        )
        .unwrap();
    }
    e
}

fn measure(e: &PolicyEngine, functions: usize, n: usize) -> (f64, f64, usize) {
    let mut samples = Vec::with_capacity(n);
    let mut allowed = 0;
    for i in 0..n {
        let f = format!("fn-{}", (i * 7919) % functions);
        let host = if i % 2 == 0 {
            format!("api{}.example.com", (i * 7919) % functions)
        } else {
            "x.shared.example.com".to_string()
        };
        let t = Instant::now();
        let ok = e.may_request(
            &f,
            &HostRequest {
                https: true,
                name: &host,
                port: 443,
            },
        );
        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
        allowed += usize::from(ok);
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[n / 2], samples[n * 99 / 100], allowed)
}

fn main() {
    let n = 200_000;
    let t = Instant::now();
    let loaded = engine(1000, 20);
    let compile_ms = t.elapsed().as_secs_f64() * 1000.0;
    let baseline = engine(1, 0);
    // Warm up both, then measure alternately so machine noise hits both alike.
    measure(&loaded, 1000, 10_000);
    measure(&baseline, 1, 10_000);
    let mut loaded = loaded;
    let mut baseline = baseline;
    println!("| policies loaded | decision cache | decisions | allowed | p50 (µs) | p99 (µs) |");
    println!("|---|---|---|---|---|---|");
    for cache in [false, true] {
        loaded.cache = cache;
        baseline.cache = cache;
        let (bp50, bp99, ba) = measure(&baseline, 1, n);
        let (lp50, lp99, la) = measure(&loaded, 1000, n);
        let c = if cache {
            "on (steady state)"
        } else {
            "off (every decision evaluated)"
        };
        println!(
            "| 1 function, 0 guardrails (baseline) | {c} | {n} | {ba} | {bp50:.2} | {bp99:.2} |"
        );
        println!("| 1,000 functions, 20 guardrails | {c} | {n} | {la} | {lp50:.2} | {lp99:.2} |");
    }
    // The same decisions with every policy judged by Cedar's evaluator (native off).
    loaded.cache = false;
    loaded.set_native_guardrails(false).unwrap();
    baseline.cache = false;
    baseline.set_native_guardrails(false).unwrap();
    let (bp50, bp99, ba) = measure(&baseline, 1, n);
    let (lp50, lp99, la) = measure(&loaded, 1000, n);
    let c = "off, Cedar's evaluator for every policy";
    println!("| 1 function, 0 guardrails (baseline) | {c} | {n} | {ba} | {bp50:.2} | {bp99:.2} |");
    println!("| 1,000 functions, 20 guardrails | {c} | {n} | {la} | {lp50:.2} | {lp99:.2} |");
    println!();
    println!("compiling 1,000 functions' policy sets with 20 guardrails took {compile_ms:.0} ms");
}
