//! Fuzzes `Manifest::parse`, which reads the `moat.toml` a deploy brings: it must never panic,
//! and whatever it accepts the node must accept too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_manifest::{FunctionSpec, Input, Manifest};

const FILE: &str = "moat.toml";

fuzz_target!(|data: &[u8]| {
    // `Manifest::load` reads the file with `read_to_string`: non-UTF-8 never reaches `parse`.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Manifest::parse(FILE, text) {
        Ok(m) => {
            let name = &m.function.name;
            assert!(
                (1..=63).contains(&name.len())
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "accepted function.name {name:?}"
            );
            assert!(
                m.function.route.starts_with('/'),
                "accepted route {:?}",
                m.function.route
            );
            // The node validates the uploaded spec again (the admin API is a trust boundary):
            // a manifest the CLI accepts must give a spec the node accepts.
            let spec = FunctionSpec {
                name: m.function.name.clone(),
                route: m.function.route.clone(),
                auth: m.function.auth,
                limits: m.limits.clone(),
                input: Input {
                    methods: m.input.methods.clone(),
                    content_types: m.input.content_types.clone(),
                    schema: None,
                },
                permissions: m
                    .permissions
                    .to_permissions()
                    .expect("parse accepted its permissions"),
                config: m.config.clone(),
                dlp: m.dlp.clone(),
            };
            if let Err(e) = spec.validate() {
                panic!("parse accepted a manifest whose spec fails validation: {e}");
            }
            if let Some(r) = &m.limits.rate_limit {
                assert!(r.parse::<moat_manifest::RateLimit>().is_ok());
            }
            let _ = spec.route_match();
        }
        Err(e) => {
            assert_eq!(e.file, FILE);
            // Formatting the error (what the CLI prints) must not panic either.
            let shown = e.to_string();
            assert!(shown.starts_with(FILE), "{shown}");
        }
    }
});
