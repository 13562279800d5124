//! What each subcommand does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Method;
use moat_manifest::Manifest;
use serde_json::{Value, json};

use crate::client::{Admin, Http};
use crate::{
    Cli, Command, FunctionsCommand, IamCommand, LogFormat, MasterKeyCommand, Output, PolicyCommand,
    SecretsCommand, TokensCommand, UpArgs,
};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::client::set_trust(cli.ca_cert.clone(), cli.tls_pin.clone())?;
    let token = cli.token.clone().or_else(|| read_token_file(&cli.data_dir));
    let admin = Admin::new(&cli.admin, token.clone());
    let out = cli.output;
    match cli.command {
        Command::Up(args) => up(cli.data_dir, args).await,
        Command::Deploy { path, signature } => {
            deploy(&admin, &path, signature.as_deref(), out).await
        }
        Command::Trust { command } => crate::node_supply::trust(&admin, command, out).await,
        Command::Settings { command } => crate::node_supply::settings(&admin, command, out).await,
        Command::Advisories { command } => {
            crate::node_supply::advisories(&admin, command, out).await
        }
        Command::Invoke {
            name,
            data,
            method,
            headers,
            path,
            gateway,
        } => {
            invoke(
                &admin,
                InvokeArgs {
                    name,
                    data,
                    method,
                    headers,
                    path,
                    gateway,
                    token,
                },
                out,
            )
            .await
        }
        Command::Functions { command } => functions(&admin, command, out).await,
        Command::Secrets { command } => secrets(&admin, command, out).await,
        Command::Policy { command } => policy(&admin, command, out).await,
        Command::Kv { command } => crate::operations::kv(&admin, command, out).await,
        Command::AuditLog { command } => crate::operations::audit_log(&admin, command, out).await,
        Command::Alerts { command } => crate::operations::alerts(&admin, command, out).await,
        Command::Supply(command) => crate::supply::run(command, out),
        Command::MasterKey {
            command: MasterKeyCommand::Rotate,
        } => {
            let v = admin
                .json(Method::POST, "/v1/master-key/rotate", &json!({}))
                .await?;
            print(out, &v, || {
                format!(
                    "master key rotated (key id {}); re-wrapped {} sealed values",
                    v["key_id"].as_str().unwrap_or(""),
                    v["rewrapped"]
                )
            });
            Ok(())
        }
        Command::Iam {
            command: IamCommand::Review { name, since },
        } => iam_review(&admin, name, since, out).await,
        Command::Tokens { command } => {
            let from_file = cli.token.is_none();
            tokens(
                &admin,
                command,
                out,
                from_file.then_some(cli.data_dir.as_path()),
            )
            .await
        }
        Command::Logs {
            name,
            request,
            since,
            follow,
        } => logs(&admin, &name, request, since, follow, out).await,
        Command::Compile { .. } => unreachable_compile(),
    }
}

fn unreachable_compile() -> anyhow::Result<()> {
    bail!("`__compile` is handled before the async runtime starts")
}

fn read_token_file(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("admin.token"))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

pub(crate) fn print(out: Output, value: &Value, text: impl FnOnce() -> String) {
    match out {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Text => println!("{}", text()),
    }
}

async fn up(data_dir: PathBuf, args: UpArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let exe = std::env::current_exe().context("cannot find the moat binary for compilation")?;
    moat_node::run(moat_node::NodeConfig {
        data_dir,
        listen: args.listen,
        admin_listen: args.admin_listen,
        store: args.store,
        master_key_cmd: args.master_key_cmd,
        compile_limits: moat_runtime::compile::CompileLimits {
            cpu_secs: args.compile_cpu_secs,
            memory_mb: args.compile_memory_mb,
            wall: Duration::from_secs(args.compile_timeout_secs),
        },
        pool: moat_runtime::PoolSettings {
            max_instances: args.max_instances,
            ..Default::default()
        },
        exe,
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        max_connections: args.max_connections,
        trusted_proxies: args
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse()
                    .map_err(|e: String| anyhow::anyhow!("--trusted-proxy: {e}"))
            })
            .collect::<anyhow::Result<_>>()?,
        egress_resolve: args.egress_resolve,
        egress_timeout: Duration::from_millis(args.egress_timeout_ms),
        tls: moat_node::TlsSettings {
            cert: args.tls_cert,
            key: args.tls_key,
            self_signed: args.tls_self_signed,
            insecure_http: args.insecure_http,
        },
        otlp_endpoint: args.otlp_endpoint,
        log_export: args.log_export,
        telemetry_off: args.telemetry_off,
        audit_queue: args.audit_queue,
    })
    .await
}

async fn deploy(
    admin: &Admin,
    path: &Path,
    signature: Option<&Path>,
    out: Output,
) -> anyhow::Result<()> {
    let manifest_path = if path.is_dir() {
        path.join("moat.toml")
    } else {
        path.to_path_buf()
    };
    let manifest = Manifest::load(&manifest_path)?;
    let base = manifest_path.parent().unwrap_or(Path::new("."));
    let file = manifest_path.display().to_string();
    let locked = manifest.lock(&file, base)?;
    let digest = moat_store_digest(&locked.component);
    let uploaded = admin
        .call(
            Method::PUT,
            &format!("/v1/components/{digest}"),
            Some(("application/wasm", Bytes::from(locked.component.clone()))),
        )
        .await
        .with_context(|| format!("upload of `{}` refused", locked.component_path.display()))?;
    // After the upload, so that what is not a component is refused by the node, saying why.
    let (signature, sbom) = crate::node_supply::deploy_extras(
        &locked.component_path,
        &locked.component,
        base,
        manifest.function.sbom.as_deref(),
        signature,
    )?;
    let deployed = admin
        .json(
            Method::POST,
            "/v1/functions",
            &json!({
                "spec": locked.spec, "component": digest,
                "signature": signature, "sbom": sbom,
            }),
        )
        .await
        .with_context(|| format!("deploy of `{}` failed", locked.spec.name))?;
    let value = json!({ "deployed": deployed, "component": uploaded });
    print(out, &value, || {
        let mut s = format!(
            "deployed {} version {} at {} (component sha256:{}, {})",
            deployed["function"].as_str().unwrap_or("?"),
            deployed["version"],
            deployed["route"].as_str().unwrap_or("?"),
            &digest[..12],
            match deployed["signer"].as_str() {
                Some(signer) => format!("signed by {signer}"),
                None => "unsigned".into(),
            }
        );
        for (key, label) in [("findings", "finding"), ("ignored_findings", "ignored")] {
            for f in deployed[key].as_array().into_iter().flatten() {
                s.push_str(&format!(
                    "\n{label}: {} ({}) in {} {}",
                    f["id"].as_str().unwrap_or(""),
                    f["severity"].as_str().unwrap_or(""),
                    f["package"].as_str().unwrap_or(""),
                    f["version"].as_str().unwrap_or("")
                ));
            }
        }
        s
    });
    Ok(())
}

fn moat_store_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

struct InvokeArgs {
    name: String,
    data: Option<String>,
    method: Option<String>,
    headers: Vec<String>,
    path: Option<String>,
    gateway: String,
    token: Option<String>,
}

async fn invoke(admin: &Admin, a: InvokeArgs, out: Output) -> anyhow::Result<()> {
    let shown = admin
        .call(Method::GET, &format!("/v1/functions/{}", a.name), None)
        .await?;
    let route = shown["function"]["route"].as_str().unwrap_or("/");
    let base = route.strip_suffix("/...").unwrap_or(route);
    let path = match &a.path {
        Some(p) if p.starts_with('/') => format!("{base}{p}"),
        Some(p) => format!("{base}/{p}"),
        None if base.is_empty() => "/".to_string(),
        None => base.to_string(),
    };
    let body = match &a.data {
        Some(d) => match d.strip_prefix('@') {
            Some(file) => Some(Bytes::from(
                std::fs::read(file).with_context(|| format!("cannot read `{file}`"))?,
            )),
            None => Some(Bytes::from(d.clone())),
        },
        None => None,
    };
    let method = match &a.method {
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("invalid method `{m}`"))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    let mut headers = Vec::new();
    let mut content_type = "application/octet-stream".to_string();
    for h in &a.headers {
        let (k, v) = h
            .split_once(':')
            .with_context(|| format!("a header must be `Name: value`, found `{h}`"))?;
        if k.trim().eq_ignore_ascii_case("content-type") {
            content_type = v.trim().to_string();
        } else {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let url = format!("{}{path}", a.gateway.trim_end_matches('/'));
    // A public function never needs, and so never gets, the caller's token.
    let needs_token = shown["spec"]["auth"].as_str() != Some("public");
    let reply = Http::new()
        .send(
            method,
            &url,
            a.token.as_deref().filter(|_| needs_token),
            &headers,
            body.map(|b| (content_type.as_str(), b)),
        )
        .await?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let request_id = reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match out {
        Output::Json => {
            let v =
                json!({ "status": reply.status.as_u16(), "request_id": request_id, "body": text });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Output::Text => print!("{text}{}", if text.ends_with('\n') { "" } else { "\n" }),
    }
    if !reply.status.is_success() {
        bail!(
            "the gateway answered {} (request id {request_id})",
            reply.status
        );
    }
    Ok(())
}

async fn functions(admin: &Admin, command: FunctionsCommand, out: Output) -> anyhow::Result<()> {
    match command {
        FunctionsCommand::List => {
            let v = admin.call(Method::GET, "/v1/functions", None).await?;
            print(out, &v, || {
                let mut s = format!(
                    "{:<24} {:>7} {:>7}  {}",
                    "NAME", "SERVING", "LATEST", "ROUTE"
                );
                for f in v["functions"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "\n{:<24} {:>7} {:>7}  {}",
                        f["name"].as_str().unwrap_or(""),
                        f["active_version"],
                        f["latest_version"],
                        f["route"].as_str().unwrap_or("")
                    ));
                }
                s
            });
        }
        FunctionsCommand::Show { name, sbom: true } => {
            let v = admin
                .call(Method::GET, &format!("/v1/functions/{name}/sbom"), None)
                .await?;
            // CycloneDX is JSON whatever `--output` says.
            print(Output::Json, &v, String::new);
        }
        FunctionsCommand::Show { name, sbom: false } => {
            let v = admin
                .call(Method::GET, &format!("/v1/functions/{name}"), None)
                .await?;
            print(out, &v, || {
                let f = &v["function"];
                let mut s = format!(
                    "{}\n  route:    {}\n  auth:     {}\n  serving:  version {}\n  versions:",
                    f["name"].as_str().unwrap_or(""),
                    f["route"].as_str().unwrap_or(""),
                    v["spec"]["auth"].as_str().unwrap_or(""),
                    f["active_version"],
                );
                for ver in v["versions"].as_array().into_iter().flatten() {
                    let active = ver["version"] == f["active_version"];
                    s.push_str(&format!(
                        "\n    {} {:>4}  {}  sha256:{}",
                        if active { "*" } else { " " },
                        ver["version"],
                        ver["route"].as_str().unwrap_or(""),
                        ver["component"]
                            .as_str()
                            .unwrap_or("")
                            .get(..12)
                            .unwrap_or("")
                    ));
                }
                s.push_str(&crate::node_supply::show_supply(&v));
                s
            });
        }
        FunctionsCommand::Delete { name } => {
            let v = admin
                .call(Method::DELETE, &format!("/v1/functions/{name}"), None)
                .await?;
            print(out, &v, || format!("deleted {name}"));
        }
        FunctionsCommand::Rollback { name, to } => {
            let v = admin
                .json(
                    Method::POST,
                    &format!("/v1/functions/{name}/rollback"),
                    &json!({ "to": to }),
                )
                .await?;
            print(out, &v, || {
                format!("{name} now serves version {}", v["version"])
            });
        }
    }
    Ok(())
}

async fn iam_review(
    admin: &Admin,
    name: Option<String>,
    since: Option<String>,
    out: Output,
) -> anyhow::Result<()> {
    let mut path = "/v1/iam/review?".to_string();
    if let Some(n) = &name {
        path.push_str(&format!("function={n}&"));
    }
    if let Some(s) = since {
        let since_ms = moat_now_ms() - humantime_duration(&s)?.as_millis() as i64;
        path.push_str(&format!("since_ms={since_ms}"));
    }
    let v = admin.call(Method::GET, &path, None).await?;
    print(out, &v, || {
        let mut s = String::new();
        for f in v["functions"].as_array().into_iter().flatten() {
            let unused = &f["unused"];
            let count = |k: &str| unused[k].as_array().map_or(0, Vec::len);
            s.push_str(&format!("# {}\n", f["function"].as_str().unwrap_or("")));
            for kind in ["outbound_hosts", "secrets", "kv"] {
                for item in unused[kind].as_array().into_iter().flatten() {
                    s.push_str(&format!("unused {kind}: {}\n", item.as_str().unwrap_or("")));
                }
            }
            if count("outbound_hosts") + count("secrets") + count("kv") == 0 {
                s.push_str("every grant was used\n");
            }
            s.push_str(&format!(
                "suggested:\n{}\n",
                f["suggested"].as_str().unwrap_or("")
            ));
        }
        s.trim_end().to_string()
    });
    Ok(())
}

async fn policy(admin: &Admin, command: PolicyCommand, out: Output) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Add { file, name } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("policy")
                    .to_string(),
            };
            let v = admin
                .call(
                    Method::PUT,
                    &format!("/v1/policies/{name}"),
                    Some(("text/plain", Bytes::from(text))),
                )
                .await
                .with_context(|| format!("`{}` was refused", file.display()))?;
            print(out, &v, || {
                format!("added guardrail {name} ({} policies)", v["policies"])
            });
        }
        PolicyCommand::List => {
            let v = admin.call(Method::GET, "/v1/policies", None).await?;
            print(out, &v, || {
                let mut s = String::new();
                for p in v["policies"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "# {}\n{}\n",
                        p["name"].as_str().unwrap_or(""),
                        p["text"].as_str().unwrap_or("").trim_end()
                    ));
                }
                if s.is_empty() {
                    "no guardrails".to_string()
                } else {
                    s.trim_end().to_string()
                }
            });
        }
        PolicyCommand::Remove { name } => {
            let v = admin
                .call(Method::DELETE, &format!("/v1/policies/{name}"), None)
                .await?;
            print(out, &v, || format!("removed guardrail {name}"));
        }
    }
    Ok(())
}

async fn secrets(admin: &Admin, command: SecretsCommand, out: Output) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Set { name, from_file } => {
            let mut value = match &from_file {
                Some(path) => std::fs::read(path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?,
                None => {
                    use std::io::Read;
                    let mut buf = Vec::new();
                    std::io::stdin()
                        .read_to_end(&mut buf)
                        .context("cannot read the value from stdin")?;
                    buf
                }
            };
            // `echo value | moat secrets set` adds a newline that is not part of the value.
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
            if value.is_empty() {
                bail!("the secret value is empty (give it on stdin or with --from-file)");
            }
            let v = admin
                .call(
                    Method::PUT,
                    &format!("/v1/secrets/{name}"),
                    Some(("application/octet-stream", Bytes::from(value))),
                )
                .await?;
            print(out, &v, || format!("set {name} (version {})", v["version"]));
        }
        SecretsCommand::List => {
            let v = admin.call(Method::GET, "/v1/secrets", None).await?;
            print(out, &v, || {
                let mut s = format!(
                    "{:<32} {:>7}  {:<16}  {:<24}  {}",
                    "NAME", "VERSION", "KEPT", "LAST READ", "READERS"
                );
                for m in v["secrets"].as_array().into_iter().flatten() {
                    let readers: Vec<&str> = m["readers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str())
                        .collect();
                    let last_read = m["last_read_ms"]
                        .as_u64()
                        .map(|ms| {
                            humantime::format_rfc3339_seconds(
                                std::time::UNIX_EPOCH + Duration::from_millis(ms),
                            )
                            .to_string()
                        })
                        .unwrap_or_else(|| "never".into());
                    // Kept versions, each with the functions pinned to it: `1 (billing), 2, 3`.
                    let kept: Vec<String> = m["versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| {
                            let pins: Vec<&str> = v["pinned_by"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|p| p.as_str())
                                .collect();
                            if pins.is_empty() {
                                v["version"].to_string()
                            } else {
                                format!("{} ({})", v["version"], pins.join(" "))
                            }
                        })
                        .collect();
                    s.push_str(&format!(
                        "\n{:<32} {:>7}  {:<16}  {:<24}  {}",
                        m["name"].as_str().unwrap_or(""),
                        m["version"],
                        kept.join(", "),
                        last_read,
                        readers.join(", ")
                    ));
                }
                s
            });
        }
        SecretsCommand::Delete { name, version } => {
            let path = match version {
                Some(n) => format!("/v1/secrets/{name}/versions/{n}"),
                None => format!("/v1/secrets/{name}"),
            };
            let v = admin.call(Method::DELETE, &path, None).await?;
            print(out, &v, || match version {
                Some(n) => format!("deleted version {n} of {name}"),
                None => format!("deleted {name} (every version)"),
            });
        }
    }
    Ok(())
}

async fn tokens(
    admin: &Admin,
    command: TokensCommand,
    out: Output,
    token_file_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let shown = |v: &Value| {
        format!(
            "{}\n  id: {}  role: {}{}\n  (shown once: store it now)",
            v["token"].as_str().unwrap_or(""),
            v["id"].as_str().unwrap_or(""),
            v["role"].as_str().unwrap_or(""),
            v["function"]
                .as_str()
                .map(|f| format!("  function: {f}"))
                .unwrap_or_default()
        )
    };
    match command {
        TokensCommand::Create {
            role,
            function,
            expires,
            name,
        } => {
            let expires_in_secs = match expires {
                Some(e) => Some(humantime_duration(&e)?.as_secs()),
                None => None,
            };
            let v = admin
                .json(
                    Method::POST,
                    "/v1/tokens",
                    &json!({ "role": role, "function": function, "expires_in_secs": expires_in_secs, "name": name }),
                )
                .await?;
            print(out, &v, || shown(&v));
        }
        TokensCommand::List => {
            let v = admin.call(Method::GET, "/v1/tokens", None).await?;
            print(out, &v, || {
                let mut s = format!(
                    "{:<18} {:<10} {:<16} {:<8} {}",
                    "ID", "ROLE", "NAME", "STATE", "FUNCTION"
                );
                for t in v["tokens"].as_array().into_iter().flatten() {
                    let state = if t["revoked"].as_bool() == Some(true) {
                        "revoked"
                    } else if t["expires_at_ms"]
                        .as_i64()
                        .is_some_and(|e| e <= moat_now_ms())
                    {
                        "expired"
                    } else {
                        "live"
                    };
                    s.push_str(&format!(
                        "\n{:<18} {:<10} {:<16} {:<8} {}",
                        t["id"].as_str().unwrap_or(""),
                        t["role"].as_str().unwrap_or(""),
                        t["name"].as_str().unwrap_or(""),
                        state,
                        t["function"].as_str().unwrap_or("-")
                    ));
                }
                s
            });
        }
        TokensCommand::Revoke { id } => {
            let v = admin
                .call(Method::DELETE, &format!("/v1/tokens/{id}"), None)
                .await?;
            print(out, &v, || format!("revoked {id}"));
        }
        TokensCommand::Rotate { id } => {
            let me = admin.call(Method::GET, "/v1/whoami", None).await?;
            let v = admin
                .call(Method::POST, &format!("/v1/tokens/{id}/rotate"), None)
                .await?;
            // Rotating the token this command authenticated with from the data dir: keep
            // the file working.
            if let (Some(dir), true) = (token_file_dir, me["id"].as_str() == Some(id.as_str())) {
                let path = dir.join("admin.token");
                let secret = v["token"].as_str().unwrap_or("").to_string();
                write_private(&path, secret.as_bytes()).with_context(|| {
                    format!("the token was rotated but `{}` could not be rewritten; the new token is: {secret}", path.display())
                })?;
                eprintln!("rewrote {}", path.display());
            }
            print(out, &v, || shown(&v));
        }
    }
    Ok(())
}

async fn logs(
    admin: &Admin,
    name: &str,
    request: Option<String>,
    since: Option<String>,
    follow: bool,
    out: Output,
) -> anyhow::Result<()> {
    let mut path = format!("/v1/functions/{name}/logs?limit=1000");
    if let Some(r) = &request {
        path.push_str(&format!("&request_id={}", crate::operations::urlencode(r)));
    }
    if let Some(s) = since {
        let d = humantime_duration(&s)?;
        path.push_str(&format!(
            "&since_ms={}",
            moat_now_ms() - d.as_millis() as i64
        ));
    }
    if !follow {
        let v = admin.call(Method::GET, &path, None).await?;
        for r in v["logs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            print_log(r, out);
        }
        return Ok(());
    }
    follow_logs(admin, name, &format!("{path}&follow=true"), out).await
}

/// How long `logs -f` waits for anything from the node (it writes an empty line every 15 s
/// when idle) before it calls the connection lost.
const FOLLOW_IDLE: Duration = Duration::from_secs(45);

/// `logs -f`: prints the stored output, then each new record the node pushes, until the
/// function is deleted (exit 0) or the stream ends any other way (an error saying why).
async fn follow_logs(admin: &Admin, name: &str, path: &str, out: Output) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let lost = || format!("lost the connection to the node while following the logs of `{name}`");
    let mut body = admin.stream(path).await?;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(FOLLOW_IDLE, body.frame()).await {
            Err(_) => bail!("{} (nothing from it for {FOLLOW_IDLE:?})", lost()),
            Ok(None) => bail!("{}", lost()),
            Ok(Some(Err(e))) => bail!("{}: {e}", lost()),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(at) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=at).collect();
            let line = &line[..at];
            // An empty line says the stream is alive.
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_slice(line)
                .with_context(|| format!("{}: the node sent a line that is not JSON", lost()))?;
            if let Some(end) = v.get("end").and_then(Value::as_str) {
                let message = v["message"].as_str().unwrap_or(end);
                if end == "deleted" {
                    eprintln!("{message}; no more output will follow");
                    return Ok(());
                }
                bail!("stopped following the logs of `{name}`: {message}");
            }
            print_log(&v, out);
        }
    }
}

/// One stored log record: as JSON, or one line of text per line it holds.
fn print_log(r: &Value, out: Output) {
    match out {
        Output::Json => println!("{r}"),
        Output::Text => {
            let text = r["text"].as_str().unwrap_or("");
            for line in text.lines() {
                println!(
                    "{} {} v{} {}: {line}",
                    r["at_ms"],
                    r["request_id"].as_str().unwrap_or(""),
                    r["version"],
                    r["stream"].as_str().unwrap_or("")
                );
            }
        }
    }
}

fn humantime_duration(s: &str) -> anyhow::Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("expected a duration such as `10m`, found `{s}`"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => bail!("expected a duration such as `30s`, `10m`, `2h` or `7d`, found `{s}`"),
    };
    Ok(Duration::from_secs(secs))
}

fn moat_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Replaces a file with `contents`, readable only by its owner from the first byte.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
