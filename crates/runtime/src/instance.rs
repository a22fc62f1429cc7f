//! One running copy of a function: a child process and its Runtime API endpoint.

use crate::api::{ApiServer, InitSignal, Outcome, Work, MAX_RESPONSE_BYTES};
use crate::error::InvokeError;
use crate::logs::{LogLine, LogSink, Stream};
use crate::reconcile::Reconciler;
use crate::sandbox::{authority, relay_platform_api, Confined, IdleFreezer, Limits, NetNs, Plan, Relay, Sandbox};
use crate::Prepared;
use bytes::Bytes;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};

/// How often a busy instance's resident memory is checked against its limit.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(pub u64);

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "i-{}", self.0)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the watcher saw when the process ended.
#[derive(Debug, Clone)]
struct Exit {
    detail: String,
    out_of_memory: bool,
}

/// Who a process works for, set when it is assigned a function (at spawn, or when a prewarmed
/// spare is specialised). Output lines and the memory watchdog read it.
#[derive(Default)]
pub(crate) struct Identity {
    function: OnceLock<Arc<str>>,
    memory_kb: AtomicU64,
    /// Woken when the process exits, so that its pool notices at once (not at a poll).
    on_exit: OnceLock<Arc<Reconciler>>,
}

impl Identity {
    fn assign(&self, function: Arc<str>, memory_mb: u32, on_exit: &Arc<Reconciler>) {
        let _ = self.function.set(function);
        self.memory_kb.store(memory_mb as u64 * 1024, Ordering::Relaxed);
        let _ = self.on_exit.set(on_exit.clone());
    }

    fn function(&self) -> Arc<str> {
        self.function.get().cloned().unwrap_or_else(|| Arc::from("(prewarmed)"))
    }
}

/// A started process with its Runtime API endpoint, not yet (necessarily) initialised.
pub(crate) struct Spawned {
    pub api: ApiServer,
    pid: i32,
    exit: watch::Receiver<Option<Exit>>,
    busy: Arc<AtomicBool>,
    became_busy: Arc<tokio::sync::Notify>,
    identity: Arc<Identity>,
    dead: AtomicBool,
    id: InstanceId,
    /// The sandbox's hold on this process (uid, cgroup), released once it is reaped.
    confined: Option<Arc<Confined>>,
    /// A sandboxed spare's control socket to its init.
    control: Option<tokio::sync::Mutex<tokio::net::UnixStream>>,
    /// Freezes the instance while it is idle (`sandbox/freezer.rs`), when confined.
    freezer: Option<Arc<IdleFreezer>>,
    /// The platform API relay into the instance's own network namespace (`network = "none"`).
    _relay: Option<Relay>,
    /// Second read ends of the stdout and stderr pipes, to see whether the readers have caught
    /// up ([`Spawned::output_drained`]).
    output: Vec<std::os::fd::OwnedFd>,
}

/// How a process is confined (`sandbox/mod.rs`).
pub(crate) struct Confine<'a> {
    pub sandbox: &'a Arc<Sandbox>,
    /// The function's code; `None` for a prewarmed spare.
    pub code: Option<&'a std::path::Path>,
    pub memory_mb: Option<u32>,
    pub tmp_mb: u32,
    pub extra_read_only: &'a [std::path::PathBuf],
    /// A spare whose program comes later ([`Spawned::exec`]), for `provided` functions.
    pub exec_later: bool,
    /// A network namespace of its own (`network = "none"`, `sandbox/netns.rs`); never for a
    /// spare.
    pub network_none: bool,
    /// `GUST_API` as the host's functions get it, relayed into the namespace.
    pub platform_api: Option<&'a str>,
}

impl Spawned {
    /// Starts `program` with exactly `env` (plus the Runtime API address) in `cwd`, confined
    /// by the sandbox when `confine` is given (`cwd` is then a path inside it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn spawn(
        program: &std::path::Path,
        args: &[String],
        env: &[(String, String)],
        cwd: &std::path::Path,
        identity: Arc<Identity>,
        sink: Arc<dyn LogSink>,
        socket_dir: Option<&std::path::Path>,
        confine: Option<Confine<'_>>,
    ) -> std::io::Result<Self> {
        let network_none = confine.as_ref().is_some_and(|c| c.network_none);
        let made = match &confine {
            Some(c) if c.network_none && c.code.is_none() => {
                return Err(std::io::Error::other(
                    "a prewarmed spare cannot have a network namespace",
                ))
            }
            Some(c) if c.network_none => {
                let making = Instant::now();
                let made = NetNs::create().await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("making the instance's network namespace: {e}"))
                })?;
                tracing::debug!(
                    netns_us = making.elapsed().as_micros() as u64,
                    "made an instance's network namespace"
                );
                Some(made)
            }
            _ => None,
        };
        let mut netns_fd = None;
        let mut relay = None;
        let rewritten: Vec<(String, String)>;
        let mut env = env;
        let api = match made {
            Some(made) => {
                // GUST_API (and the service URLs under it, and the AWS endpoints) point at the relay inside.
                if let Some(url) = confine.as_ref().and_then(|c| c.platform_api) {
                    let target = authority(url)
                        .ok_or_else(|| std::io::Error::other(format!("cannot relay the platform API at {url}")))?;
                    let inside = format!("http://{}", made.platform_api.local_addr()?);
                    relay = Some(relay_platform_api(made.platform_api, target.to_string())?);
                    rewritten = env
                        .iter()
                        .map(|(k, v)| match v.strip_prefix(url) {
                            Some(rest)
                                if k == "GUST_API"
                                    || k.starts_with("GUST_SERVICE_")
                                    || k.starts_with("AWS_ENDPOINT_URL") =>
                            {
                                (k.clone(), format!("{inside}{rest}"))
                            }
                            _ => (k.clone(), v.clone()),
                        })
                        .collect();
                    env = &rewritten;
                }
                netns_fd = Some(made.ns);
                ApiServer::bind(socket_dir, true, Some((made.runtime_api, Arc::new(made.netns)))).await?
            }
            None => ApiServer::bind(socket_dir, confine.is_some(), None).await?,
        };
        let id = InstanceId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let mut control = None;
        let mut confined = None;
        let mut cmd = match &confine {
            None => {
                let mut cmd = Command::new(program);
                cmd.args(args).current_dir(cwd).stdin(Stdio::null());
                cmd
            }
            Some(c) => {
                let plan = Plan {
                    code: c.code,
                    memory_mb: c.memory_mb,
                    tmp_mb: c.tmp_mb,
                    socket: api.socket_path.as_deref(),
                    extra_read_only: c.extra_read_only,
                    exec_later: c.exec_later,
                    cwd: &cwd.to_string_lossy(),
                    netns_on_stdin: network_none,
                };
                let held = c.sandbox.confine(&plan, id.0)?;
                if let (Some(uid), Some(socket)) = (held.uid(), api.socket_path.as_deref()) {
                    // Connecting needs write permission on the socket: its instance's user only.
                    let id = nix::unistd::Uid::from_raw(uid);
                    nix::unistd::chown(socket, Some(id), Some(nix::unistd::Gid::from_raw(uid)))
                        .map_err(std::io::Error::from)?;
                }
                let mut cmd = Command::new(c.sandbox.launcher());
                cmd.args(&held.args).current_dir("/");
                if !c.exec_later {
                    cmd.arg("--").arg(program).args(args);
                }
                if c.code.is_none() {
                    // A spare: its init takes the function's code over this socket later.
                    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
                    ours.set_nonblocking(true)?;
                    control = Some(tokio::sync::Mutex::new(tokio::net::UnixStream::from_std(ours)?));
                    cmd.stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)));
                } else if let Some(ns) = netns_fd.take() {
                    // The launcher joins it (`--netns 0`) and puts /dev/null in its place.
                    cmd.stdin(Stdio::from(ns));
                } else {
                    cmd.stdin(Stdio::null());
                }
                confined = Some(Arc::new(held));
                cmd
            }
        };
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .envs(api.socket_path.as_deref().map(|p| ("GUST_RUNTIME_API_SOCKET", p)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        supervise(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        drop(cmd); // the spare's end of its control socket
        let pid = child
            .id()
            .map(|p| p as i32)
            .ok_or_else(|| std::io::Error::other("the process vanished at start"))?;
        api.set_owner(pid);
        let freezer = confined
            .as_ref()
            .and_then(|c| c.freezer())
            .map(|(freezer, grace)| IdleFreezer::start(freezer, grace, api.state.at_next.subscribe()));
        let orphan_guard = crate::orphans::OrphanGuard::new(pid);
        let mut output = Vec::new();
        if let Some(out) = child.stdout.take() {
            output.extend(std::os::fd::AsFd::as_fd(&out).try_clone_to_owned());
            pipe_lines(
                out,
                Stream::Stdout,
                identity.clone(),
                id,
                api.state.clone(),
                sink.clone(),
            );
        }
        if let Some(err) = child.stderr.take() {
            output.extend(std::os::fd::AsFd::as_fd(&err).try_clone_to_owned());
            pipe_lines(err, Stream::Stderr, identity.clone(), id, api.state.clone(), sink);
        }

        // The watcher owns the child: it reaps it and enforces the memory limit.
        let (exit_tx, exit) = watch::channel(None);
        let busy = Arc::new(AtomicBool::new(false));
        let watch_busy = busy.clone();
        let became_busy = Arc::new(tokio::sync::Notify::new());
        let wake = became_busy.clone();
        let watched = identity.clone();
        let held = confined.clone();
        let thaw = freezer.clone();
        // A cgroup limit counts every process of the instance; without one, the leader's
        // resident memory is sampled while it is busy.
        let sample_rss = held.as_ref().is_none_or(|c| c.cgroup.is_none());
        tokio::spawn(async move {
            let mut out_of_memory = false;
            let status = loop {
                if sample_rss && watch_busy.load(Ordering::Relaxed) {
                    tokio::select! {
                        status = child.wait() => break status,
                        _ = tokio::time::sleep(MEMORY_SAMPLE_EVERY) => {
                            let limit_kb = watched.memory_kb.load(Ordering::Relaxed);
                            if limit_kb > 0 && rss_kb(pid).is_some_and(|kb| kb > limit_kb) {
                                out_of_memory = true;
                                kill_group(pid);
                            }
                        }
                    }
                } else {
                    // Idle instances cost no wake-ups: sleep until the next invocation.
                    tokio::select! {
                        status = child.wait() => break status,
                        _ = wake.notified() => {}
                    }
                }
            };
            // Reaped: the group id may be reused from here on.
            drop(orphan_guard);
            if let Some(f) = &thaw {
                // Left frozen, the instance's other processes would not die with it.
                f.end();
            }
            if let Some(held) = &held {
                out_of_memory |= held.oom_kills() > 0;
            }
            drop(held);
            let detail = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = exit_tx.send(Some(Exit { detail, out_of_memory }));
            if let Some(reconciler) = watched.on_exit.get() {
                reconciler.wake();
            }
        });
        Ok(Self {
            api,
            pid,
            exit,
            busy,
            became_busy,
            identity,
            dead: AtomicBool::new(false),
            id,
            confined,
            control,
            freezer,
            _relay: relay,
            output,
        })
    }

    /// Waits (until `deadline` at most) until what the function wrote to stdout and stderr so
    /// far has been read off the pipes, so that the lines it printed before answering are
    /// delivered before the platform's `END` and `REPORT`. A line being split at that very
    /// moment on another thread may still follow them.
    pub(crate) async fn output_drained(&self, deadline: Instant) {
        loop {
            let pending = self
                .output
                .iter()
                .any(|fd| rustix::io::ioctl_fionread(fd).is_ok_and(|n| n > 0));
            if !pending || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::task::yield_now().await;
    }

    /// The most memory the instance has used, in MB: the cgroup's peak when it is confined in
    /// one (`memory.max_usage_in_bytes`, cgroup v2 `memory.peak`), else the process's own
    /// high-water mark (`VmHWM` in `/proc/<pid>/status`). `None` once neither can be read.
    pub(crate) fn max_memory_used_mb(&self) -> Option<u64> {
        let cgroup = self.confined.as_ref().and_then(|c| c.cgroup.as_ref());
        let bytes = match cgroup.and_then(|c| c.peak_memory_bytes()) {
            Some(b) => b,
            None => hwm_kb(self.pid)? * 1024,
        };
        Some(bytes.div_ceil(1 << 20))
    }

    /// Gives a sandboxed spare its function: the function's limits on its cgroup, then its
    /// code bound at /var/task by the spare's init (which lets go of the host root).
    pub(crate) async fn take_function(
        &self,
        code: &std::path::Path,
        masks: &[String],
        memory_mb: u32,
    ) -> Result<(), String> {
        if let Some(cg) = self.confined.as_ref().and_then(|c| c.cgroup.as_ref()) {
            cg.set_limits(Limits {
                memory_mb,
                pids: crate::sandbox::MAX_PIDS,
                cpu_mb: crate::sandbox::INIT_CPU_MB,
            })
            .map_err(|e| format!("setting the spare's limits: {e}"))?;
        }
        let mut line = format!("task {}", code.display());
        for m in masks {
            line.push('\t');
            line.push_str(m);
        }
        if line.contains('\n') || line.matches('\t').count() != masks.len() {
            return Err("a code path with a tab or newline cannot be bound".into());
        }
        line.push('\n');
        self.command(line.as_bytes()).await
    }

    /// Starts the function in a sandboxed `provided` spare (started `exec_later`): its
    /// program, arguments and environment (the spare's Runtime API address added).
    pub(crate) async fn exec(
        &self,
        program: &std::path::Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<(), String> {
        use std::os::unix::ffi::OsStrExt;
        let has_nul = program.as_os_str().as_bytes().contains(&0)
            || args.iter().any(|a| a.contains('\0'))
            || env.iter().any(|(k, v)| k.contains('\0') || v.contains('\0'));
        if has_nul {
            return Err("an argument or environment value contains a NUL byte".into());
        }
        let mut blob = Vec::new();
        for arg in std::iter::once(program.as_os_str().as_bytes()).chain(args.iter().map(|a| a.as_bytes())) {
            blob.extend_from_slice(arg);
            blob.push(0);
        }
        blob.push(0);
        let api = format!("AWS_LAMBDA_RUNTIME_API={}", self.api.addr);
        for kv in env.iter().map(|(k, v)| format!("{k}={v}")).chain(std::iter::once(api)) {
            blob.extend_from_slice(kv.as_bytes());
            blob.push(0);
        }
        let mut message = format!("exec {}\n", blob.len()).into_bytes();
        message.extend_from_slice(&blob);
        self.command(&message).await
    }

    /// Sends one command to a sandboxed spare's init and reads its one-line answer.
    async fn command(&self, message: &[u8]) -> Result<(), String> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let Some(control) = &self.control else { return Ok(()) };
        let mut stream = control.lock().await;
        let exchange = async {
            stream.write_all(message).await?;
            let mut reply = String::new();
            BufReader::new(&mut *stream).read_line(&mut reply).await?;
            Ok::<_, std::io::Error>(reply)
        };
        match tokio::time::timeout(Duration::from_secs(2), exchange).await {
            Ok(Ok(reply)) if reply.trim_end() == "ok" => Ok(()),
            Ok(Ok(reply)) => Err(format!("the spare's init answered: {}", reply.trim_end())),
            Ok(Err(e)) => Err(format!("the spare's init: {e}")),
            Err(_) => Err("the spare's init did not answer".into()),
        }
    }

    pub(crate) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    fn kill(&self) {
        if !self.dead.swap(true, Ordering::Relaxed) {
            kill_group(self.pid);
            // A frozen process acts on the SIGKILL only once thawed (cgroup v1).
            if let Some(f) = &self.freezer {
                f.end();
            }
        }
    }

    /// Work is about to be handed over: thawed if frozen.
    fn busy(&self) {
        if let Some(f) = &self.freezer {
            f.busy();
        }
    }

    /// The init phase is over: from now on the instance gets the CPU weight of its memory.
    fn end_init(&self, memory_mb: u32) {
        if let Some(cg) = self.confined.as_ref().and_then(|c| c.cgroup.as_ref()) {
            cg.set_cpu_weight(memory_mb);
        }
    }

    /// Idle until the next invocation: frozen after the grace.
    fn idle(&self) {
        if let Some(f) = &self.freezer {
            f.idle();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A function process ready to take invocations, one at a time.
pub struct Instance {
    pub id: InstanceId,
    function: Arc<str>,
    arn: Arc<str>,
    memory_mb: u32,
    process: Spawned,
    pub init_duration: Duration,
    /// Whether this instance came from a prewarmed spare (no process start on its cold start).
    pub prewarmed: bool,
    invocations: AtomicU64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("function", &self.function)
            .field("pid", &self.process.pid)
            .finish()
    }
}

/// What one invocation on an instance produced.
#[derive(Debug)]
pub(crate) enum Answer {
    Ok(Bytes),
    FunctionError { error_type: String, body: Bytes },
}

fn epoch_ms(at: Instant) -> u64 {
    let now_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let remaining = at.saturating_duration_since(Instant::now());
    (now_epoch + remaining).as_millis() as u64
}

fn rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn hwm_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn kill_group(pid: i32) {
    // The child leads its own process group, so this also ends anything it started.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Prepares a command Gust supervises (functions, upstream commands): its own process group,
/// killed when dropped, and killed when Gust dies: once started, hold an
/// [`OrphanGuard`](crate::OrphanGuard) for it until it is reaped (the watchdog of
/// `orphans.rs`; without a watchdog the child gets `PR_SET_PDEATHSIG` instead).
pub fn supervise(cmd: &mut Command) {
    cmd.process_group(0).kill_on_drop(true);
    if !crate::orphans::watchdog_running() {
        die_with_parent(cmd);
    }
}

/// Kills a supervised process and everything it started.
pub fn kill_process_group(pid: i32, graceful: bool) {
    let _ = killpg(
        Pid::from_raw(pid),
        if graceful { Signal::SIGTERM } else { Signal::SIGKILL },
    );
}

/// Makes the child die with Gust when there is no watchdog. It forks the whole Gust process
/// instead of `posix_spawn` (code runs between fork and exec), so it is the fallback only.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: `pre_exec` runs in the forked child before exec; prctl(PR_SET_PDEATHSIG) is
    // async-signal-safe and touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

fn pipe_lines<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    stream: Stream,
    identity: Arc<Identity>,
    id: InstanceId,
    current: Arc<crate::api::ApiState>,
    sink: Arc<dyn LogSink>,
) {
    // Bounded whatever the function writes: lines capped, bytes decoded lossily, the pipe
    // always drained, a per-instance budget past which lines are dropped (`output.rs`).
    let budget = crate::output::Budget::for_instance(id.0);
    tokio::spawn(crate::output::read_lines(reader, budget, move |line| {
        let request_id = current.current.lock().expect("current lock").clone();
        sink.line(LogLine {
            function: identity.function(),
            instance: id.0,
            request_id,
            stream,
            line,
        });
    }));
}

impl Prepared {
    /// Makes an instance ready for its first invocation: a prewarmed spare of the same runtime
    /// is specialised when one is ready, else a process is started. Waits for the first `/next`,
    /// up to the function's `init_timeout` from the start of this call (a spare's hand-over
    /// counts, its own earlier start does not).
    pub(crate) async fn start(
        &self,
        sink: Arc<dyn LogSink>,
        reconciler: &Arc<Reconciler>,
    ) -> Result<Instance, InvokeError> {
        let spec = &self.spec;
        let function: Arc<str> = spec.name.as_str().into();
        let started = Instant::now();
        let init_deadline = tokio::time::Instant::from_std(started + spec.init_timeout);
        let mut spare = self.spares.as_ref().and_then(|s| s.take(spec.kind.clone()));
        // The replacement spare is built once this cold start is over, not beside it on the
        // same cores.
        let _replenish = self.spares.as_ref().map(|s| s.replenish_after(spec.kind.clone()));
        if let (Some(sp), Some(_)) = (&spare, &self.sandbox) {
            let taken = async {
                sp.take_function(&spec.code_dir, &self.masks, spec.memory_mb).await?;
                if spec.kind == gust_model::RuntimeKind::Provided {
                    sp.exec(&self.program, &self.args, &self.env).await?;
                }
                Ok::<_, String>(())
            };
            let handover = Instant::now();
            let taken = taken.await;
            tracing::debug!(function = %function, handover_us = handover.elapsed().as_micros() as u64, "a sandboxed spare took the function");
            if let Err(e) = taken {
                tracing::warn!(function = %function, error = %e, "a prewarmed spare could not take the function; starting a process");
                spare = None;
            }
        }
        let prewarmed = spare.is_some();
        let process = match spare {
            Some(spare) => {
                spare.identity.assign(function.clone(), spec.memory_mb, reconciler);
                spare.api.specialize(self.specialization());
                spare
            }
            None => {
                let identity = Arc::new(Identity::default());
                identity.assign(function.clone(), spec.memory_mb, reconciler);
                let confine = self.sandbox.as_ref().map(|sandbox| Confine {
                    sandbox,
                    code: Some(&spec.code_dir),
                    memory_mb: Some(spec.memory_mb),
                    tmp_mb: spec.ephemeral_storage_mb,
                    extra_read_only: &self.extra_read_only,
                    exec_later: false,
                    network_none: spec.network == gust_model::Network::None,
                    platform_api: self.platform_api.as_deref(),
                });
                let cwd = match confine {
                    Some(_) => std::path::Path::new(crate::sandbox::TASK_ROOT),
                    None => spec.code_dir.as_path(),
                };
                Spawned::spawn(
                    &self.program,
                    &self.args,
                    &self.env,
                    cwd,
                    identity,
                    sink,
                    self.socket_dir.as_deref(),
                    confine,
                )
                .await
                .map_err(|e| InvokeError::Platform(format!("starting `{function}`: {e}")))?
            }
        };
        let mut instance = Instance {
            id: process.id,
            function: function.clone(),
            arn: self.function_arn.clone(),
            memory_mb: spec.memory_mb,
            process,
            init_duration: Duration::ZERO,
            prewarmed,
            invocations: AtomicU64::new(0),
        };
        let init = std::mem::replace(&mut instance.process.api.init, oneshot::channel().1);
        let exit = instance.process.exit.clone();
        let init_failed = |error_type: String, message: String| InvokeError::InitFailed {
            function: function.to_string(),
            error_type,
            message,
            backoff: None,
        };
        let result = tokio::select! {
            signal = init => match signal {
                Ok(InitSignal::Ready) => Ok(()),
                Ok(InitSignal::Failed { error_type, body }) => Err(init_failed(error_type, error_message(&body))),
                Err(_) => Err(InvokeError::Platform(format!("starting `{function}`: the runtime API stopped"))),
            },
            _ = exited(exit) => {
                let detail = instance.process.exit.borrow().as_ref().map(|e| e.detail.clone()).unwrap_or_default();
                Err(init_failed("Runtime.ExitError".into(), format!("the runtime exited during init ({detail})")))
            }
            _ = tokio::time::sleep_until(init_deadline) => Err(init_failed(
                "Sandbox.Timedout".into(),
                format!("init did not finish within the function's init_timeout of {:?}", spec.init_timeout),
            )),
        };
        match result {
            Ok(()) => {
                instance.init_duration = started.elapsed();
                instance.process.end_init(spec.memory_mb);
                instance.process.idle();
                tracing::debug!(function = %function, instance = %instance.id, pid = instance.process.pid, prewarmed, init_ms = instance.init_duration.as_millis() as u64, "instance started");
                Ok(instance)
            }
            Err(e) => {
                instance.kill();
                Err(e)
            }
        }
    }
}

/// Resolves once the watcher has reported the process's exit.
async fn exited(mut exit: watch::Receiver<Option<Exit>>) {
    let _ = exit.wait_for(Option::is_some).await;
}

/// Pulls `errorMessage` out of a Lambda error body, falling back to the raw text.
pub(crate) fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(1000).collect())
}

impl Instance {
    pub fn is_dead(&self) -> bool {
        self.process.dead.load(Ordering::Relaxed) || self.process.has_exited()
    }

    pub fn pid(&self) -> i32 {
        self.process.pid
    }

    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// See [`Spawned::max_memory_used_mb`].
    pub(crate) fn max_memory_used_mb(&self) -> Option<u64> {
        self.process.max_memory_used_mb()
    }

    /// See [`Spawned::output_drained`].
    pub(crate) async fn output_drained(&self, deadline: Instant) {
        self.process.output_drained(deadline).await
    }

    /// Kills the process group at once. Idempotent.
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Kills the process and waits (briefly) until it has been reaped.
    pub async fn stop(&self) {
        self.kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), exited(self.process.exit.clone())).await;
    }

    /// Runs one invocation. On timeout, crash or memory overrun the instance is killed and
    /// marked dead; the caller (the pool) drops it.
    pub(crate) async fn invoke(
        &self,
        request_id: Arc<str>,
        payload: Bytes,
        deadline: Instant,
        timeout: Duration,
        trace_id: Option<String>,
        client_context: Option<String>,
    ) -> Result<Answer, InvokeError> {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        let work = Work {
            request_id,
            deadline_ms: epoch_ms(deadline),
            function_arn: self.arn.clone(),
            trace_id,
            client_context,
            payload,
            done,
        };
        self.process.busy();
        self.process.busy.store(true, Ordering::Relaxed);
        self.process.became_busy.notify_one();
        let result = self.run(work, answer, deadline, timeout).await;
        self.process.busy.store(false, Ordering::Relaxed);
        match &result {
            Ok(_) => self.process.idle(),
            Err(_) => self.kill(),
        }
        result
    }

    async fn run(
        &self,
        work: Work,
        answer: oneshot::Receiver<Outcome>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Answer, InvokeError> {
        let function = || self.function.to_string();
        let deadline = tokio::time::Instant::from_std(deadline);
        let crashed = |exit: Option<Exit>| match exit {
            Some(e) if e.out_of_memory => InvokeError::OutOfMemory {
                function: function(),
                limit_mb: self.memory_mb,
            },
            Some(e) => InvokeError::Crashed {
                function: function(),
                detail: e.detail,
            },
            None => InvokeError::Crashed {
                function: function(),
                detail: "the runtime dropped the invocation".into(),
            },
        };
        tokio::select! {
            biased;
            outcome = async {
                self.process.api.work.send(work).await.map_err(|_| ())?;
                answer.await.map_err(|_| ())
            } => match outcome {
                Ok(Outcome::Response(body)) => Ok(Answer::Ok(body)),
                Ok(Outcome::Error { error_type, body }) => Ok(Answer::FunctionError { error_type, body }),
                Ok(Outcome::TooLarge(size)) => Err(InvokeError::ResponseTooLarge {
                    function: function(),
                    size,
                    limit: MAX_RESPONSE_BYTES,
                }),
                Err(()) => {
                    // Give the watcher a moment to report why the process went away.
                    let _ = tokio::time::timeout(Duration::from_millis(200), exited(self.process.exit.clone())).await;
                    let e = self.process.exit.borrow().clone();
                    Err(crashed(e))
                }
            },
            _ = exited(self.process.exit.clone()) => {
                let e = self.process.exit.borrow().clone();
                Err(crashed(e))
            }
            _ = tokio::time::sleep_until(deadline) => Err(InvokeError::Timeout {
                function: function(),
                timeout,
            }),
        }
    }
}
