//! Test program: uses `wasi:keyvalue` (0.2.0-draft; the WIT in `wit/` is the proposal as
//! shipped with wasmtime-wasi-keyvalue). Query: `bucket=B&op=OP&key=K[&value=V][&n=N]`, where
//! OP is `none` (touch nothing), `get`, `set`, `verify` (count `k0..` equal to V), `delete`, `exists`, `incr`, `list` or `fill` (sets N keys `k0..` to
//! V). Answers one line: the result, or `open error E` / `OP error E`.

use tp_common::{query_param, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "wasi:keyvalue/imports", generate_all });
}

use bindings::wasi::keyvalue::{atomics, store};

struct Kv;

fn run(request: &IncomingRequest) -> String {
    let param = |k: &str| query_param(request, k).unwrap_or_default();
    let (bucket, op, key, value) = (param("bucket"), param("op"), param("key"), param("value"));
    if op == "none" {
        return "none".into(); // the same program without key-value, for the benchmark
    }
    let b = match store::open(&bucket) {
        Ok(b) => b,
        Err(e) => return format!("open error {e:?}"),
    };
    let answer = match op.as_str() {
        "get" => b.get(&key).map(|v| match v {
            Some(v) => format!("value {}", String::from_utf8_lossy(&v)),
            None => "absent".into(),
        }),
        "set" => b.set(&key, value.as_bytes()).map(|()| "set".into()),
        "delete" => b.delete(&key).map(|()| "deleted".into()),
        "exists" => b.exists(&key).map(|e| format!("exists {e}")),
        "incr" => atomics::increment(&b, &key, 1).map(|n| format!("counter {n}")),
        "list" => b.list_keys(None).map(|r| format!("keys {}", r.keys.join(","))),
        "fill" => {
            let n: usize = param("n").parse().unwrap_or(0);
            let mut result = Ok(format!("filled {n}"));
            for i in 0..n {
                if let Err(e) = b.set(&format!("k{i}"), value.as_bytes()) {
                    result = Err(e);
                    break;
                }
            }
            result
        }
        "verify" => {
            // How many of `k0..k{n-1}` hold exactly `value`.
            let n: usize = param("n").parse().unwrap_or(0);
            let mut ok = 0;
            let mut result = Ok(String::new());
            for i in 0..n {
                match b.get(&format!("k{i}")) {
                    Ok(Some(v)) if v == value.as_bytes() => ok += 1,
                    Ok(_) => {}
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            result.map(|_| format!("verified {ok}"))
        }
        other => return format!("unknown op {other}"),
    };
    match answer {
        Ok(s) => s,
        Err(e) => format!("{op} error {e:?}"),
    }
}

impl Guest for Kv {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let body = run(&request);
        respond(response_out, 200, "text/plain", body.as_bytes());
    }
}

wasi::http::proxy::export!(Kv);
