//! DLP throughput: MB/s scanning 1 MiB of JSON-like text with 10 secrets, beside a plain
//! memchr pass and a copy of the same buffer in the same run. Prints a markdown table.
//!
//! Run with `cargo run --release -p moat-dlp --example dlp_bench`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_dlp::{Detector, DetectorSet, Scanner};
use zeroize::Zeroizing;

const SIZE: usize = 1 << 20;
const RUNS: usize = 15;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// JSON records with words, numbers, ids and timestamps: the shape of API responses.
fn json_like(rng: &mut Rng) -> Vec<u8> {
    let words = [
        "order",
        "customer",
        "amount",
        "currency",
        "EUR",
        "status",
        "shipped",
        "items",
        "name",
        "Widget",
        "description",
        "a small blue widget",
        "created_at",
        "id",
    ];
    let mut out = b"[".to_vec();
    while out.len() < SIZE - 200 {
        let id = rng.next();
        let rec = format!(
            "{{\"{}\":\"{}\",\"id\":\"{:016x}\",\"qty\":{},\"price\":{}.{:02},\"ts\":\"2025-0{}-1{}T10:{:02}:00Z\"}},\n",
            rng.pick(&words),
            rng.pick(&words),
            id,
            id % 100,
            id % 1000,
            id % 100,
            1 + id % 9,
            id % 10,
            id % 60,
        );
        out.extend_from_slice(rec.as_bytes());
    }
    out.resize(SIZE, b' ');
    out
}

fn median(mut f: impl FnMut()) -> Duration {
    f(); // warm caches and lazy DFAs
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn main() -> Result<(), moat_dlp::DlpError> {
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let buf = json_like(&mut rng);
    let secrets: Vec<(String, Zeroizing<Vec<u8>>)> = (0..10)
        .map(|i| {
            let value = format!("sk_{:016x}{:016x}", rng.next(), rng.next());
            (format!("secret-{i}"), Zeroizing::new(value.into_bytes()))
        })
        .collect();
    let default = Arc::new(Scanner::new(&secrets, DetectorSet::default())?);
    let secrets_only = Scanner::new(&secrets, DetectorSet::secrets_only())?;
    let all = Scanner::new(&secrets, DetectorSet::default().with(Detector::HighEntropy))?;

    let mut rows: Vec<(&str, Duration)> = vec![
        (
            "baseline: memchr count of `\"`",
            median(|| {
                black_box(memchr::memchr_iter(b'"', black_box(&buf)).count());
            }),
        ),
        (
            "baseline: copy",
            median(|| {
                black_box(black_box(&buf).to_vec());
            }),
        ),
        (
            "scan, secrets only",
            median(|| {
                black_box(secrets_only.scan(black_box(&buf)));
            }),
        ),
        (
            "scan, default detectors",
            median(|| {
                black_box(default.scan(black_box(&buf)));
            }),
        ),
        (
            "scan, default + high-entropy",
            median(|| {
                black_box(all.scan(black_box(&buf)));
            }),
        ),
        (
            "redact, default detectors",
            median(|| {
                black_box(default.redact(black_box(&buf)));
            }),
        ),
    ];
    rows.push((
        "stream 16 KiB chunks, default",
        median(|| {
            let mut st = default.stream();
            for chunk in buf.chunks(16 * 1024) {
                black_box(st.feed_release(chunk));
            }
            black_box(st.finish_release());
        }),
    ));

    let findings = default.scan(&buf).len();
    println!(
        "1 MiB JSON-like text, 10 secrets ({} literals after encodings), median of {RUNS} runs; {findings} findings with default detectors\n",
        format!("{default:?}")
            .split("literals: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("?"),
    );
    println!("| pass | median | MB/s |");
    println!("|---|---:|---:|");
    for (name, t) in rows {
        let mbs = SIZE as f64 / 1e6 / t.as_secs_f64();
        println!("| {name} | {:.3} ms | {mbs:.0} |", t.as_secs_f64() * 1e3);
    }
    Ok(())
}
