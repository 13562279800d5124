//! Cost of `[input]` schema validation per body, beside the baseline of only parsing the
//! body with serde_json, measured in the same run. Prints a markdown table of medians.
//!
//!     cargo run --release -p moat-input --example validate_bench
//!
//! Bodies are written by `bench/schemas/gen_order.py` into a temporary directory and
//! checked against `bench/schemas/order.json`, the schema the HTTP benchmark uses.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use moat_input::validate::Schema;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time of one call of `f`, over `rounds` rounds of enough calls to take ~20 ms.
fn time(rounds: usize, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut per_round = 0u32;
    while start.elapsed() < Duration::from_millis(20) {
        f();
        per_round += 1;
    }
    let samples = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                f();
            }
            t.elapsed() / per_round
        })
        .collect();
    median(samples)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schemas = repo.join("bench/schemas");
    let schema: serde_json::Value =
        serde_json::from_slice(&std::fs::read(schemas.join("order.json"))?)?;
    let schema = Schema::compile(&schema)?;
    let dir = tempfile::tempdir()?;
    println!(
        "| body | parse only (µs) | parse + depth + schema (µs) | validation cost (µs) | ratio |"
    );
    println!("|---|---|---|---|---|");
    for (label, size) in [("1 KiB", 1024), ("64 KiB", 65536), ("256 KiB", 256 << 10)] {
        let path = dir.path().join(format!("{size}.json"));
        let status = Command::new("python3")
            .arg(schemas.join("gen_order.py"))
            .arg(size.to_string())
            .arg(&path)
            .status()?;
        if !status.success() {
            return Err("gen_order.py failed".into());
        }
        let body = std::fs::read(&path)?;
        assert!(
            schema.check(&body).is_ok(),
            "the generated body must be valid"
        );
        let parse = time(15, || {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            std::hint::black_box(v);
        });
        let check = time(15, || {
            std::hint::black_box(schema.check(&body).is_ok());
        });
        println!(
            "| {label} | {:.1} | {:.1} | {:+.1} | {:.2} |",
            parse.as_secs_f64() * 1e6,
            check.as_secs_f64() * 1e6,
            (check.as_secs_f64() - parse.as_secs_f64()) * 1e6,
            check.as_secs_f64() / parse.as_secs_f64()
        );
    }
    Ok(())
}
