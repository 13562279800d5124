//! `moat`: runs a node (`moat up`) and manages it through the admin API.
//!
//! Exit codes: 0 success, 1 failure, 2 bad usage (clap's own code for usage errors).

mod client;
mod commands;
mod node_supply;
mod operations;
mod supply;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "moat",
    version,
    about = "A hardened, self-hosted Function-as-a-Service platform"
)]
pub struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Admin API of the node.
    #[arg(
        long,
        global = true,
        env = "MOAT_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    admin: String,
    /// API token (default: the data dir's `admin.token`).
    #[arg(long, global = true, env = "MOAT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The node's data dir.
    #[arg(long, global = true, env = "MOAT_DATA_DIR", default_value = "./.moat")]
    data_dir: PathBuf,
    /// Trust this PEM CA certificate (or self-signed certificate) for `https://` URLs.
    #[arg(long, global = true, env = "MOAT_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Trust exactly the server certificate with this SHA-256 fingerprint (hex, as `moat up`
    /// prints it) for `https://` URLs.
    #[arg(long, global = true, env = "MOAT_TLS_PIN")]
    tls_pin: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: the gateway and the admin API.
    Up(UpArgs),
    /// Deploy the manifest at PATH (a file, or a directory holding moat.toml).
    Deploy {
        #[arg(default_value = "moat.toml")]
        path: PathBuf,
        /// The component's minisign signature (default: COMPONENT.minisig, when present).
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Call a deployed function through the gateway.
    Invoke {
        name: String,
        /// Request body (`@FILE` reads a file).
        #[arg(short = 'd', long = "data")]
        data: Option<String>,
        /// HTTP method (default GET, or POST with a body).
        #[arg(short = 'X', long = "request")]
        method: Option<String>,
        /// Extra header, `'Name: value'`; repeatable.
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Path below a prefix route (e.g. `/items/1`).
        #[arg(long)]
        path: Option<String>,
        /// Gateway of the node.
        #[arg(
            long,
            env = "MOAT_GATEWAY_URL",
            default_value = "http://127.0.0.1:8080"
        )]
        gateway: String,
    },
    /// Manage functions.
    Functions {
        #[command(subcommand)]
        command: FunctionsCommand,
    },
    /// API tokens: shown once, stored hashed.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Secrets: write-only; no command ever prints a value.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Organization guardrails: Cedar `forbid` policies, judged with every grant.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Key-value buckets: owned by the platform, granted with `permissions.kv`.
    Kv {
        #[command(subcommand)]
        command: KvCommand,
    },
    /// The master key: `rotate` re-wraps every sealed value under a new one, online.
    #[command(name = "master-key")]
    MasterKey {
        #[command(subcommand)]
        command: MasterKeyCommand,
    },
    /// Alert rules over audit events: thresholds in a window, sent to a signed webhook or
    /// the log, with deduplication and a quiet period.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// The tamper-evident audit log.
    #[command(name = "audit-log")]
    AuditLog {
        #[command(subcommand)]
        command: AuditLogCommand,
    },
    /// Granted against used permissions, and a least-privilege manifest block.
    Iam {
        #[command(subcommand)]
        command: IamCommand,
    },
    /// A function's captured output.
    Logs {
        name: String,
        /// Only this request.
        #[arg(long)]
        request: Option<String>,
        /// Only output newer than this (e.g. `10m`, `2h`).
        #[arg(long)]
        since: Option<String>,
        /// Keep printing new output as it is stored, until the function is deleted.
        #[arg(short, long)]
        follow: bool,
    },
    /// Public keys whose signatures this node accepts.
    Trust {
        #[command(subcommand)]
        command: node_supply::TrustCommand,
    },
    /// Node settings shared by every node of a cluster (`require_signature`,
    /// `block_severity`); each change is audited.
    Settings {
        #[command(subcommand)]
        command: node_supply::SettingsCommand,
    },
    /// The node's advisory database and its exceptions.
    Advisories {
        #[command(subcommand)]
        command: node_supply::AdvisoriesCommand,
    },
    #[command(flatten)]
    Supply(supply::SupplyCommand),
    /// Internal: compile a component from stdin under resource limits (used by the node).
    #[command(name = "__compile", hide = true)]
    Compile {
        #[arg(long)]
        cpu_secs: u64,
        #[arg(long)]
        memory_mb: u64,
    },
}

#[derive(Subcommand)]
enum FunctionsCommand {
    /// List functions.
    List,
    /// Show a function: versions, serving spec, signer, dependencies and findings, and the
    /// component's imports, exports, size and producers.
    Show {
        name: String,
        /// Print the serving version's bill of materials as CycloneDX JSON instead.
        #[arg(long)]
        sbom: bool,
    },
    /// Delete a function and all its versions.
    Delete { name: String },
    /// Serve an earlier version (default: the one before the serving one).
    Rollback {
        name: String,
        #[arg(long)]
        to: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token (printed once).
    Create {
        /// admin, deployer, auditor, invoker or none.
        #[arg(long)]
        role: Option<String>,
        /// The one function an `invoker` token may call.
        #[arg(long)]
        function: Option<String>,
        /// Lifetime, e.g. `30d`, `12h`.
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token.
    Revoke { id: String },
    /// Replace a token with a new secret (same role and scope); the old one is revoked.
    /// Rotating the data dir's own admin token rewrites `admin.token`.
    Rotate { id: String },
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Set a secret (a new version) from stdin, or from a file; never from the command line.
    Set {
        name: String,
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// Names, kept versions (and which functions pin each), and which functions may read
    /// them; never a value.
    List,
    /// Delete a secret and every kept version, or with `--version N` one old version.
    /// Refused while a serving function pins what would go.
    Delete {
        name: String,
        #[arg(long)]
        version: Option<i64>,
    },
}

#[derive(Subcommand)]
pub enum IamCommand {
    /// Per function: permissions granted, used, unused, and a suggested `[permissions]`.
    Review {
        name: Option<String>,
        /// Only uses newer than this (e.g. `7d`); default: all recorded uses.
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Add (or replace) a guardrail file, validated against Moat's Cedar schema.
    Add {
        file: PathBuf,
        /// Default: the file name without `.cedar`.
        #[arg(long)]
        name: Option<String>,
    },
    /// List guardrails.
    List,
    /// Remove a guardrail.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum KvCommand {
    /// Create a bucket with its quotas.
    Create {
        name: String,
        /// Largest value, in bytes (default 1 MiB).
        #[arg(long)]
        max_value_bytes: Option<u64>,
        /// Most keys (default 10,000).
        #[arg(long)]
        max_keys: Option<u64>,
        /// Most key and value bytes in all (default 64 MiB).
        #[arg(long)]
        max_total_bytes: Option<u64>,
    },
    /// List buckets with their use and quotas.
    List,
    /// Delete a bucket and everything in it.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Add (or replace by name) the rules of a TOML file of `[[alert]]` tables.
    Add { file: PathBuf },
    /// List the rules.
    List,
    /// Send a made-up firing of a rule to its sinks.
    Test { name: String },
    /// Delete a rule.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum MasterKeyCommand {
    /// Re-wrap every secret and key-value data key under a new master key (written to
    /// `<data-dir>/master.key`). Safe to interrupt; run it again to finish.
    Rotate,
}

#[derive(Subcommand)]
pub enum AuditLogCommand {
    /// Show records (newest last).
    Show {
        /// Only records since this long ago (`10m`, `2h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        function: Option<String>,
        /// An action, or a prefix ending in `*` (`admin.*`).
        #[arg(long)]
        action: Option<String>,
    },
    /// Walk the whole chain and name the first record changed, removed or inserted. With a
    /// checkpoint exported earlier, also detect a truncated or recomputed chain.
    Verify {
        /// A checkpoint line (from `audit-log checkpoint` or the node's checkpoint log).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The checkpoint key's public half (base64), pinned; default: the node's.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Print a signed checkpoint of the current head (keep it off the node).
    Checkpoint,
}

#[derive(clap::Args)]
pub struct UpArgs {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Admin API address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin_listen: SocketAddr,
    /// Store: `sqlite://PATH` (default `<data-dir>/moat.db`).
    #[arg(long)]
    store: Option<String>,
    /// Command that prints the base64 master key (overrides MOAT_MASTER_KEY and the key file).
    #[arg(long)]
    master_key_cmd: Option<String>,
    /// Log format of the node's own logs (stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// CPU seconds one compilation may use.
    #[arg(long, default_value_t = 120)]
    compile_cpu_secs: u64,
    /// Address space of the compile process, MiB.
    #[arg(long, default_value_t = 4096)]
    compile_memory_mb: u64,
    /// Wall-clock seconds one compilation may take.
    #[arg(long, default_value_t = 300)]
    compile_timeout_secs: u64,
    /// Instances that may run at once on this node.
    #[arg(long, default_value_t = 1000)]
    max_instances: u32,
    /// Milliseconds a caller may take to send a request head, or pause within a body.
    #[arg(long, default_value_t = 10_000)]
    client_timeout_ms: u64,
    /// Open connections per listener.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// A proxy (address or CIDR) whose `x-forwarded-for` is believed; repeatable.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<String>,
    /// Milliseconds for one outbound request of a function (resolve, connect, response head).
    #[arg(long, default_value_t = moat_node::defaults::EGRESS_TIMEOUT_MS)]
    egress_timeout_ms: u64,
    /// Testing: answer outbound DNS lookups of NAME with fixed addresses, one answer per
    /// lookup (`NAME=IP[,IP][;IP]`); repeatable.
    #[arg(long, hide = true)]
    egress_resolve: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (reloaded on SIGHUP).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated once and kept in `<data-dir>/tls/`; its
    /// SHA-256 fingerprint is printed (pin it with `--tls-pin`).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
    /// Allow plain HTTP on a non-loopback address.
    #[arg(long)]
    insecure_http: bool,
    /// Export a trace per request and function output as OTLP/HTTP protobuf to this
    /// collector (`URL/v1/traces`, `URL/v1/logs`), e.g. `http://127.0.0.1:4318`.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Also write every stored function log record (redacted) as a JSON line to this file
    /// (appended; created 0600), or to standard output with `-`, for a log shipper.
    #[arg(long, value_name = "PATH|-")]
    log_export: Option<String>,
    /// Benchmarking only: the gateway records no metrics, function logs, traces or limit-hit
    /// audit records (see bench/telemetry.sh). Never in production.
    #[arg(long, hide = true)]
    telemetry_off: bool,
    /// Testing: audit events held while the store is behind before more are counted as
    /// overflow (at least 1). Tests make it small to lose events on purpose.
    #[arg(long, hide = true, default_value_t = moat_node::defaults::AUDIT_QUEUE)]
    audit_queue: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Compile {
        cpu_secs,
        memory_mb,
    } = cli.command
    {
        // Before any runtime or thread exists: the child lowers its own limits first.
        let code = moat_runtime::compile::child_main(cpu_secs, memory_mb);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
