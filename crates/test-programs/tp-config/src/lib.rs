//! Test program: reads `wasi:config/store` and answers `KEY=VALUE` for `?key=KEY` (or
//! `KEY absent`); with `all=1`, followed by `keys: ...`, the names `get-all` returns. A function must see
//! its `[config]` and granted secrets, and nothing else. (The WIT in `wit/` is the
//! `wasi:config@0.2.0-rc.1` proposal, as shipped with wasmtime-wasi-config.)

use tp_common::{query_param, respond};
use wasi::exports::wasi::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "wasi:config/imports", generate_all });
}

use bindings::wasi::config::store;

struct Config;

impl Guest for Config {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let key = query_param(&request, "key").unwrap_or_default();
        let value = match store::get(&key) {
            Ok(Some(v)) => format!("{key}={v}"),
            Ok(None) => format!("{key} absent"),
            Err(e) => format!("{key} error {e:?}"),
        };
        let body = if query_param(&request, "all").as_deref() == Some("1") {
            let mut keys: Vec<String> = store::get_all()
                .map(|all| all.into_iter().map(|(k, _)| k).collect())
                .unwrap_or_default();
            keys.sort();
            format!("{value}\nkeys: {}", keys.join(","))
        } else {
            value
        };
        respond(response_out, 200, "text/plain", body.as_bytes());
    }
}

wasi::http::proxy::export!(Config);
