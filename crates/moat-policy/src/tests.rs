//! Unit, scope and differential tests of the policy engine.

use super::*;

mod engine_tests {
    use super::*;

    fn engine_with_orders() -> PolicyEngine {
        let mut e = PolicyEngine::new().unwrap();
        e.set_grants(
            "orders",
            FunctionGrants {
                hosts: vec![
                    (true, "api.stripe.com".into(), 443),
                    (false, "*.internal.example".into(), 8080),
                ],
                secrets: vec!["stripe-key".into(), "root-db".into()],
                buckets: vec!["orders".into()],
            },
        )
        .unwrap();
        e
    }

    fn host(https: bool, name: &str, port: u16) -> HostRequest<'_> {
        HostRequest { https, name, port }
    }

    #[test]
    fn grants_become_permits_for_their_function_only() {
        let e = engine_with_orders();
        assert!(e.may_request("orders", &host(true, "api.stripe.com", 443)));
        assert!(!e.may_request("orders", &host(false, "api.stripe.com", 443)));
        assert!(!e.may_request("orders", &host(true, "api.stripe.com", 8443)));
        assert!(e.may_request("orders", &host(false, "a.internal.example", 8080)));
        assert!(!e.may_request("orders", &host(false, "internal.example", 8080)));
        assert!(!e.may_request("other", &host(true, "api.stripe.com", 443)));
        assert!(e.may_read_secret("orders", "stripe-key"));
        assert!(!e.may_read_secret("orders", "other-key"));
        assert!(!e.may_read_secret("other", "stripe-key"));
    }

    #[test]
    fn guardrails_forbid_and_forbid_wins() {
        let mut e = engine_with_orders();
        let plain_http = r#"forbid(principal, action == Action::"http:request", resource) when { resource.scheme == "http" };"#;
        // `like` applies to strings, not entities: a bad policy is rejected with Cedar's message.
        let bad = r#"forbid(principal, action == Action::"secret:read", resource) when { resource like Secret::"root-*" };"#;
        assert!(e.check_guardrail(bad).is_err());
        assert!(
            e.check_guardrail("permit(principal, action, resource);")
                .is_err(),
            "permits are not guardrails"
        );
        assert!(
            e.check_guardrail("forbid(principal, action == Action::\"no:such\", resource);")
                .is_err()
        );
        assert!(e.check_guardrail("this is not cedar").is_err());
        e.check_guardrail(plain_http).unwrap();
        e.set_guardrails(vec![("no-plain-http".into(), plain_http.into())])
            .unwrap();
        assert!(!e.may_request("orders", &host(false, "a.internal.example", 8080)));
        assert!(e.may_request("orders", &host(true, "api.stripe.com", 443)));
        let no_root = r#"forbid(principal, action == Action::"secret:read", resource) when { resource.name like "root-*" };"#;
        e.check_guardrail(no_root).unwrap();
        e.set_guardrails(vec![("no-root".into(), no_root.into())])
            .unwrap();
        assert!(!e.may_read_secret("orders", "root-db"));
        assert!(e.may_read_secret("orders", "stripe-key"));
    }

    #[test]
    fn roles_and_scopes() {
        let e = PolicyEngine::new().unwrap();
        assert!(e.token_may("t1", "admin", None, "tokens:manage", None));
        assert!(e.token_may("t1", "deployer", None, "function:deploy", None));
        assert!(!e.token_may("t1", "deployer", None, "tokens:manage", None));
        assert!(!e.token_may("t1", "deployer", None, "function:delete", None));
        assert!(e.token_may("t1", "auditor", None, "iam:review", None));
        assert!(!e.token_may("t1", "auditor", None, "function:read", None));
        assert!(e.token_may("t1", "invoker", None, "function:invoke", Some("a")));
        assert!(e.token_may("t1", "invoker", Some("a"), "function:invoke", Some("a")));
        assert!(!e.token_may("t1", "invoker", Some("a"), "function:invoke", Some("b")));
        assert!(!e.token_may("t1", "invoker", None, "function:read", None));
        assert!(!e.token_may("t1", "none", None, "function:invoke", Some("a")));
    }

    #[test]
    fn names_are_quoted_not_injected() {
        let e = engine_with_orders();
        assert!(!e.may_read_secret("orders\" || true || \"", "stripe-key"));
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}

mod scope_tests {
    use super::*;

    fn engine(guardrail: &str) -> PolicyEngine {
        let mut e = PolicyEngine::new().unwrap();
        for f in ["orders", "billing"] {
            e.set_grants(
                f,
                FunctionGrants {
                    hosts: vec![(true, "api.example.com".into(), 443)],
                    secrets: vec!["key".into()],
                    buckets: vec!["shared".into()],
                },
            )
            .unwrap();
        }
        if !guardrail.is_empty() {
            e.set_guardrails(vec![("g".into(), guardrail.into())])
                .unwrap();
        }
        e
    }

    #[test]
    fn buckets_are_granted_per_function_and_forbidden_by_guardrails() {
        let e = engine("");
        assert!(e.may_use_bucket("orders", "shared", false));
        assert!(e.may_use_bucket("orders", "shared", true));
        assert!(!e.may_use_bucket("orders", "other", false));
        assert!(!e.may_use_bucket("nobody", "shared", false));
        let e = engine(r#"forbid(principal, action == Action::"kv:write", resource);"#);
        assert!(e.may_use_bucket("orders", "shared", false));
        assert!(!e.may_use_bucket("orders", "shared", true));
    }

    #[test]
    fn guardrails_apply_by_their_principal_and_action_scope() {
        // Each scope form the split by function and action must honour.
        let cases = [
            (
                r#"forbid(principal == Function::"orders", action, resource);"#,
                [false, true],
            ),
            (
                r#"forbid(principal in Function::"orders", action, resource);"#,
                [false, true],
            ),
            (
                r#"forbid(principal is Function, action, resource);"#,
                [false, false],
            ),
            (
                r#"forbid(principal is Function in Function::"billing", action, resource);"#,
                [true, false],
            ),
            (
                r#"forbid(principal, action in [Action::"kv:read", Action::"http:request"], resource);"#,
                [false, false],
            ),
            (
                r#"forbid(principal, action == Action::"secret:read", resource);"#,
                [true, true],
            ),
        ];
        for (rail, [orders, billing]) in cases {
            let e = engine(rail);
            let req = HostRequest {
                https: true,
                name: "api.example.com",
                port: 443,
            };
            assert_eq!(e.may_request("orders", &req), orders, "{rail}");
            assert_eq!(e.may_request("billing", &req), billing, "{rail}");
            // The secret is only forbidden by rails that name secret:read or any action.
            let any_action = !rail.contains("Action::");
            let secret_forbidden = rail.contains("secret:read");
            assert_eq!(
                e.may_read_secret("orders", "key"),
                !(secret_forbidden || (any_action && !orders)),
                "{rail}"
            );
        }
    }
}

mod kv_only_tests {
    use super::*;

    #[test]
    fn a_function_granted_only_buckets_may_use_them() {
        let mut e = PolicyEngine::new().unwrap();
        e.set_guardrails(vec![]).unwrap();
        e.set_grants(
            "shop",
            FunctionGrants {
                hosts: vec![],
                secrets: vec![],
                buckets: vec!["orders".into(), "ghost".into()],
            },
        )
        .unwrap();
        assert!(e.may_use_bucket("shop", "orders", false));
        assert!(e.may_use_bucket("shop", "orders", true));
    }
}

mod differential_tests {
    //! Native guardrail judging against Cedar's, over generated guardrails and requests.
    use super::*;

    const RAILS: &[&str] = &[
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name like "*.blocked.example" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name like "api*" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name like "*a*b*" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.scheme == "http" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.port != 443 };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.port == 8080 && resource.name like "*.internal" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.name == "a.example" || resource.scheme == "http" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) unless { resource.name like "*.ok.example" };"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { !(resource.port == 443) };"#,
        r#"forbid(principal == Function::"f1", action, resource);"#,
        r#"forbid(principal in Function::"f2", action == Action::"http:request", resource) when { resource.name like "*.example" };"#,
        r#"forbid(principal is Function in Function::"f3", action, resource);"#,
        r#"forbid(principal is Function, action == Action::"kv:write", resource);"#,
        r#"forbid(principal, action in [Action::"kv:read", Action::"secret:read"], resource) when { resource.name like "root-*" };"#,
        r#"forbid(principal, action == Action::"secret:read", resource == Secret::"s1");"#,
        r#"forbid(principal, action, resource is Secret) when { resource.name == "s2" };"#,
        r#"forbid(principal, action == Action::"http:request", resource in Host::"https://x.example:443");"#,
        r#"forbid(principal, action == Action::"http:request", resource) when { principal == Function::"f4" && resource.port == 443 };"#,
        // Outside the native subset: the action falls back to Cedar.
        r#"forbid(principal, action == Action::"http:request", resource) when { resource.port > 8000 };"#,
        r#"forbid(principal, action == Action::"kv:read", resource) when { resource.name like "a\*b" };"#,
    ];

    const HOSTS: &[(bool, &str, u16)] = &[
        (true, "api.example.com", 443),
        (true, "x.blocked.example", 443),
        (false, "a.example", 80),
        (true, "a.example", 443),
        (true, "svc.internal", 8080),
        (true, "good.ok.example", 443),
        (true, "ab.example", 8443),
        (true, "x.example", 443),
        (false, "apiary.test", 9000),
        (true, "zzz", 443),
    ];
    const NAMES: &[&str] = &["s1", "s2", "root-db", "app", "a*b", "axb"];

    fn engine(rails: &[&str], native: bool) -> PolicyEngine {
        let mut e = PolicyEngine::new().unwrap();
        e.cache = false;
        let text = rails.join("\n");
        e.set_guardrails(vec![("g".into(), text)]).unwrap();
        e.set_native_guardrails(native).unwrap();
        for f in 0..5 {
            e.set_grants(
                &format!("f{f}"),
                FunctionGrants {
                    hosts: HOSTS
                        .iter()
                        .map(|(h, n, p)| (*h, n.to_string(), *p))
                        .chain([(true, "*.example".to_string(), 8443)])
                        .filter(|(_, n, _)| f != 0 || n != "zzz")
                        .collect(),
                    secrets: NAMES.iter().map(|s| s.to_string()).collect(),
                    buckets: NAMES.iter().map(|s| s.to_string()).collect(),
                },
            )
            .unwrap();
        }
        e
    }

    #[test]
    fn native_guardrails_decide_exactly_as_cedar() {
        let mut seed = 0x5eed_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut decisions = 0;
        let mut native_actions = 0;
        for case in 0..120 {
            let k = 1 + (next() % 5) as usize;
            let rails: Vec<&str> = (0..k)
                .map(|_| RAILS[(next() % RAILS.len() as u64) as usize])
                .collect();
            let (a, b) = (engine(&rails, true), engine(&rails, false));
            native_actions += a.native.len();
            assert!(b.native_permits.values().all(|m| m.is_empty()));
            native_actions += a.native_permits.values().map(|m| m.len()).sum::<usize>();
            assert!(b.native.is_empty());
            for f in 0..5 {
                let f = format!("f{f}");
                for (https, name, port) in HOSTS {
                    let h = HostRequest {
                        https: *https,
                        name,
                        port: *port,
                    };
                    assert_eq!(
                        a.may_request(&f, &h),
                        b.may_request(&f, &h),
                        "case {case} {rails:?} {f} {name}"
                    );
                    decisions += 1;
                }
                for n in NAMES {
                    assert_eq!(
                        a.may_read_secret(&f, n),
                        b.may_read_secret(&f, n),
                        "case {case} {rails:?} {f} {n}"
                    );
                    for w in [false, true] {
                        assert_eq!(
                            a.may_use_bucket(&f, n, w),
                            b.may_use_bucket(&f, n, w),
                            "case {case} {rails:?} {f} {n} {w}"
                        );
                    }
                    decisions += 3;
                }
            }
        }
        // The generated guardrails exercised both paths.
        assert!(native_actions > 200, "{native_actions}");
        assert!(decisions > 10_000);
    }

    #[test]
    fn like_matches_cedar_globs() {
        use native::Pat::{Any, Lit};
        let cases: &[(&str, &[native::Pat], bool)] = &[
            ("a.example", &[Any, Lit(".example".into())], true),
            ("example", &[Any, Lit(".example".into())], false),
            (
                "aXbYb",
                &[Any, Lit("a".into()), Any, Lit("b".into()), Any],
                true,
            ),
            ("", &[Any], true),
            ("abc", &[Lit("abc".into())], true),
            ("abcd", &[Lit("abc".into())], false),
        ];
        for (text, pattern, want) in cases {
            let g = native::Guard::Like(
                native::Operand::Lit(native::Val::Str(text.to_string())),
                native::compile_pattern(pattern),
            );
            let p = uid("Function", "f").unwrap();
            let facts = native::Facts {
                principal: &p,
                resource: &p,
                attrs: &[],
            };
            assert_eq!(native::forbidden(&[g], &facts), *want, "{text}");
        }
    }
}
