//! Compilation is untrusted work: it runs in a child process under resource limits.
//!
//! A hostile component can be built to make Cranelift burn CPU or memory. The node never
//! compiles in its own process: it starts its own binary in compile mode (`moat __compile`),
//! which first lowers its own CPU-time, address-space and core-dump limits, then reads the
//! component on stdin and writes the compiled artifact on stdout. The parent also enforces a
//! wall-clock limit and caps how much it reads back.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Resource, Rlimit, setrlimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Limits on one compilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// CPU seconds (all compiler threads together).
    pub cpu_secs: u64,
    /// Address-space limit of the child, in MiB.
    pub memory_mb: u64,
    /// Wall-clock limit, enforced by the parent.
    pub wall: Duration,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            cpu_secs: 120,
            memory_mb: 4096,
            wall: Duration::from_secs(300),
        }
    }
}

/// Largest component the child accepts (and so the node), and largest artifact it returns.
pub const MAX_COMPONENT_BYTES: usize = 128 << 20;
const MAX_ARTIFACT_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("compilation exceeded its CPU-time limit of {0} s")]
    CpuLimit(u64),
    #[error("compilation exceeded its memory limit of {0} MiB")]
    MemoryLimit(u64),
    #[error("compilation exceeded its time limit of {0} s")]
    WallLimit(u64),
    #[error("the component is invalid: {0}")]
    Invalid(String),
    #[error("the compiler process failed: {0}")]
    Process(String),
}

/// Entry point of `moat __compile`: limits first, then compile stdin to stdout.
/// Returns the process exit code.
pub fn child_main(cpu_secs: u64, memory_mb: u64) -> i32 {
    let limit = |resource, value: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
    };
    // SIGXCPU at the soft CPU limit (soft == hard, so the kernel follows with SIGKILL).
    let set = limit(Resource::Cpu, cpu_secs.max(1))
        .and_then(|()| limit(Resource::As, memory_mb.saturating_mul(1 << 20)))
        .and_then(|()| limit(Resource::Core, 0));
    if let Err(e) = set {
        eprintln!("moat-compile: cannot set resource limits: {e}");
        return 3;
    }
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_COMPONENT_BYTES as u64 + 1)
        .read_to_end(&mut wasm)
    {
        eprintln!("moat-compile: reading the component: {e}");
        return 3;
    }
    if wasm.len() > MAX_COMPONENT_BYTES {
        eprintln!("invalid: the component is larger than {MAX_COMPONENT_BYTES} bytes");
        return 2;
    }
    let engine = match crate::engine::compile_engine() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("moat-compile: engine: {e:#}");
            return 3;
        }
    };
    match engine.precompile_component(&wasm) {
        Ok(compiled) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(&compiled).and_then(|()| out.flush()).is_err() {
                return 3;
            }
            0
        }
        Err(e) => {
            // Keep the first line: wasmtime's validation message, without a backtrace.
            let msg = format!("{e:#}");
            eprintln!("invalid: {}", msg.lines().next().unwrap_or("unknown error"));
            2
        }
    }
}

/// Compiles `wasm` in a child process running `exe __compile`.
pub async fn compile_in_child(
    exe: &Path,
    wasm: &[u8],
    limits: CompileLimits,
) -> Result<Vec<u8>, CompileError> {
    let process = |e: std::io::Error| CompileError::Process(e.to_string());
    let mut child = tokio::process::Command::new(exe)
        .arg("__compile")
        .arg("--cpu-secs")
        .arg(limits.cpu_secs.to_string())
        .arg("--memory-mb")
        .arg(limits.memory_mb.to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(process)?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(CompileError::Process("missing pipes".into()));
    };
    let input = wasm.to_vec();
    let feed = async move {
        // A child that dies early closes the pipe; its exit status says why.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    };
    let read_out = async move {
        let mut out = Vec::new();
        let _ = (&mut stdout)
            .take(MAX_ARTIFACT_BYTES as u64)
            .read_to_end(&mut out)
            .await;
        out
    };
    let read_err = async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
        err
    };
    let run = async {
        let ((), out, err, status) = tokio::join!(feed, read_out, read_err, child.wait());
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(limits.wall, run).await {
        Ok(r) => r,
        Err(_) => {
            let _ = child.kill().await;
            return Err(CompileError::WallLimit(limits.wall.as_secs()));
        }
    };
    let status = status.map_err(process)?;
    let stderr = String::from_utf8_lossy(&err);
    if status.success() {
        return Ok(out);
    }
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        // SIGXCPU at the soft limit, SIGKILL at the hard one.
        Some(s) if s == libc_sig::SIGXCPU || s == libc_sig::SIGKILL => {
            return Err(CompileError::CpuLimit(limits.cpu_secs));
        }
        // Allocation failure under RLIMIT_AS aborts.
        Some(s) if s == libc_sig::SIGABRT || stderr.contains("memory allocation") => {
            return Err(CompileError::MemoryLimit(limits.memory_mb));
        }
        _ => {}
    }
    if stderr.contains("memory allocation") || stderr.contains("Cannot allocate memory") {
        return Err(CompileError::MemoryLimit(limits.memory_mb));
    }
    if let Some(msg) = stderr.lines().find_map(|l| l.strip_prefix("invalid: ")) {
        return Err(CompileError::Invalid(msg.to_string()));
    }
    Err(CompileError::Process(format!(
        "exited with {status}: {}",
        stderr.lines().next().unwrap_or("")
    )))
}

/// Signal numbers (Linux), without pulling in libc.
mod libc_sig {
    pub const SIGABRT: i32 = 6;
    pub const SIGKILL: i32 = 9;
    pub const SIGXCPU: i32 = 24;
}
