//! Upstream services for `gust up`: the `Upstream` proxies the gateway and functions use,
//! their health checks, and, for local development, the `command` each may name, started
//! with `PORT`, health-checked, logged, and stopped with Gust.

use anyhow::{Context, Result};
use gust_gateway::upstream::Upstream;
use gust_model::{App, UpstreamSpec};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a started command may take to answer its health check.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct RunningUpstreams {
    pub upstreams: Vec<Arc<Upstream>>,
    health_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Each started command, with the guard that has it killed if Gust dies (kept until it
    /// has been reaped).
    children: Vec<(String, Child, Option<gust_runtime::OrphanGuard>)>,
}

impl std::fmt::Debug for RunningUpstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningUpstreams")
            .field("upstreams", &self.upstreams.len())
            .finish()
    }
}

/// What a started command learns about the Gust it belongs to.
#[derive(Debug, Clone)]
pub struct GustAddresses {
    pub gateway: String,
    pub admin: String,
    pub state_dir: std::path::PathBuf,
}

fn start_command(spec: &UpstreamSpec, gust: &GustAddresses) -> Result<Child> {
    let command = spec.command.as_deref().unwrap_or_default();
    let mut cmd = Command::new("sh");
    // `exec`: the command replaces the shell, so it is the process Gust supervises (and leads
    // the process group that is killed if Gust dies).
    cmd.args(["-c", &format!("exec {command}")])
        .current_dir(&spec.dir)
        .envs(&spec.environment)
        .env("PORT", spec.port.map(|p| p.to_string()).unwrap_or_default())
        .env("GUST_GATEWAY_URL", &gust.gateway)
        .env("GUST_ADMIN_URL", &gust.admin)
        .env("GUST_STATE_DIR", &gust.state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    gust_runtime::supervise(&mut cmd);
    let mut child = cmd.spawn().with_context(|| {
        format!(
            "upstream `{}`: cannot start `{command}` in {}",
            spec.name,
            spec.dir.display()
        )
    })?;
    for (stream, err) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            false,
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            true,
        ),
    ] {
        let Some(stream) = stream else { continue };
        let name = spec.name.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if err {
                    tracing::warn!(target: "upstream", upstream = %name, "{line}");
                } else {
                    tracing::info!(target: "upstream", upstream = %name, "{line}");
                }
            }
        });
    }
    Ok(child)
}

/// Starts the commands, waits for each to be healthy, and starts the health checks.
pub async fn start(app: &App, gust: &GustAddresses) -> Result<RunningUpstreams> {
    let mut running = RunningUpstreams {
        upstreams: Vec::new(),
        health_tasks: Vec::new(),
        children: Vec::new(),
    };
    for spec in app.upstreams.values() {
        let mut spec = spec.clone();
        if spec.port == Some(0) {
            // `port = 0`: pick a free port now, so parallel Gusts never fight over one.
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
            spec.port = Some(port);
            for t in &mut spec.targets {
                if t == "http://127.0.0.1:0" {
                    *t = format!("http://127.0.0.1:{port}");
                }
            }
        }
        let spec = &spec;
        let upstream = Upstream::new(spec.clone());
        if spec.command.is_some() {
            let child = start_command(spec, gust)?;
            let guard = child.id().map(|pid| gust_runtime::OrphanGuard::new(pid as i32));
            running.children.push((spec.name.to_string(), child, guard));
            let started = tokio::time::Instant::now();
            loop {
                if upstream.all_healthy_now().await {
                    tracing::info!(upstream = %spec.name, "started and healthy");
                    break;
                }
                if started.elapsed() > START_TIMEOUT {
                    tracing::warn!(upstream = %spec.name, path = %spec.health_path, "not healthy after {START_TIMEOUT:?}; serving anyway");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        running.health_tasks.push(upstream.spawn_health_checks());
        running.upstreams.push(upstream);
    }
    Ok(running)
}

impl RunningUpstreams {
    /// Stops health checks and the started commands (SIGTERM, then SIGKILL after 5 s).
    pub async fn stop(mut self) {
        for t in &self.health_tasks {
            t.abort();
        }
        for (name, child, _guard) in &mut self.children {
            if let Some(pid) = child.id() {
                gust_runtime::kill_process_group(pid as i32, true);
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                tracing::warn!(upstream = %name, "did not stop on SIGTERM; killing it");
                if let Some(pid) = child.id() {
                    gust_runtime::kill_process_group(pid as i32, false);
                }
                let _ = child.wait().await;
            }
        }
    }
}
