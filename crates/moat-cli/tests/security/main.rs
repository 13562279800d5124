//! Attacks that must fail. Each test is one attack and asserts the specific outcome of the
//! protection it covers; docs/threat-model.md lists them.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod audit;
mod auth;
mod canary;
mod compressed;
mod config;
mod dlp;
mod egress;
mod http;
mod iam;
mod keys;
mod kv;
mod limits;
mod policy;
mod sandbox;
mod secret_versions;
mod supply;
mod tls;
mod validation;
