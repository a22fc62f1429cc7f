//! One running copy of a function: a child process and its Runtime API endpoint.

use crate::api::{ApiServer, InitSignal, Outcome, Work, MAX_RESPONSE_BYTES};
use crate::error::InvokeError;
use crate::logs::{LogLine, LogSink, Stream};
use crate::Prepared;
use bytes::Bytes;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};

/// How long a runtime may take from spawn to its first `/next` (Lambda's init phase limit).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
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

/// A function process ready to take invocations, one at a time.
pub struct Instance {
    pub id: InstanceId,
    function: Arc<str>,
    arn: Arc<str>,
    memory_mb: u32,
    pid: i32,
    api: ApiServer,
    exit: watch::Receiver<Option<Exit>>,
    busy: Arc<AtomicBool>,
    became_busy: Arc<tokio::sync::Notify>,
    /// Set once the instance must not be used again (timed out, crashed, stopped).
    dead: AtomicBool,
    pub init_duration: Duration,
    invocations: AtomicU64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("function", &self.function)
            .field("pid", &self.pid)
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
    let now_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let remaining = at.saturating_duration_since(Instant::now());
    (now_epoch + remaining).as_millis() as u64
}

fn rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn kill_group(pid: i32) {
    // The child leads its own process group, so this also ends anything it started.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Makes the child die with Gust: without it a `kill -9` of Gust would orphan every function.
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
    function: Arc<str>,
    id: InstanceId,
    current: Arc<crate::api::ApiState>,
    sink: Arc<dyn LogSink>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let request_id = current.current.lock().expect("current lock").clone();
            sink.line(LogLine {
                function: function.clone(),
                instance: id.0,
                request_id,
                stream,
                line,
            });
        }
    });
}

impl Prepared {
    /// Starts a process and waits until its runtime asks for the first invocation.
    pub async fn start(&self, sink: Arc<dyn LogSink>) -> Result<Instance, InvokeError> {
        let spec = &self.spec;
        let function: Arc<str> = spec.name.as_str().into();
        let fail =
            |detail: String| InvokeError::Platform(format!("starting `{function}`: {detail}"));
        let started = Instant::now();
        let api = ApiServer::bind().await.map_err(|e| fail(e.to_string()))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .current_dir(&spec.code_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("{}: {e}", self.program.display())))?;
        let pid = child
            .id()
            .map(|p| p as i32)
            .ok_or_else(|| fail("process vanished".into()))?;
        let id = InstanceId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        if let Some(out) = child.stdout.take() {
            pipe_lines(
                out,
                Stream::Stdout,
                function.clone(),
                id,
                api.state.clone(),
                sink.clone(),
            );
        }
        if let Some(err) = child.stderr.take() {
            pipe_lines(
                err,
                Stream::Stderr,
                function.clone(),
                id,
                api.state.clone(),
                sink.clone(),
            );
        }

        // The watcher owns the child: it reaps it and enforces the memory limit.
        let (exit_tx, exit) = watch::channel(None);
        let busy = Arc::new(AtomicBool::new(false));
        let limit_kb = spec.memory_mb as u64 * 1024;
        let watch_busy = busy.clone();
        let became_busy = Arc::new(tokio::sync::Notify::new());
        let wake = became_busy.clone();
        tokio::spawn(async move {
            let mut out_of_memory = false;
            let status = loop {
                if watch_busy.load(Ordering::Relaxed) {
                    tokio::select! {
                        status = child.wait() => break status,
                        _ = tokio::time::sleep(MEMORY_SAMPLE_EVERY) => {
                            if rss_kb(pid).is_some_and(|kb| kb > limit_kb) {
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
            let detail = match status {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = exit_tx.send(Some(Exit {
                detail,
                out_of_memory,
            }));
        });

        let mut instance = Instance {
            id,
            function: function.clone(),
            arn: self.function_arn.clone(),
            memory_mb: spec.memory_mb,
            pid,
            api,
            exit,
            busy,
            became_busy,
            dead: AtomicBool::new(false),
            init_duration: Duration::ZERO,
            invocations: AtomicU64::new(0),
        };
        let init = std::mem::replace(&mut instance.api.init, oneshot::channel().1);
        let exit = instance.exit.clone();
        let result = tokio::select! {
            signal = init => match signal {
                Ok(InitSignal::Ready) => Ok(()),
                Ok(InitSignal::Failed { error_type, body }) => Err(InvokeError::InitFailed {
                    function: function.to_string(),
                    error_type,
                    message: error_message(&body),
                }),
                Err(_) => Err(fail("runtime API stopped".into())),
            },
            _ = exited(exit.clone()) => {
                let detail = instance.exit.borrow().as_ref().map(|e| e.detail.clone()).unwrap_or_default();
                Err(InvokeError::InitFailed {
                    function: function.to_string(),
                    error_type: "Runtime.ExitError".into(),
                    message: format!("the runtime exited during init ({detail})"),
                })
            }
            _ = tokio::time::sleep(INIT_TIMEOUT) => Err(InvokeError::InitFailed {
                function: function.to_string(),
                error_type: "Sandbox.Timedout".into(),
                message: format!("init did not finish within {INIT_TIMEOUT:?}"),
            }),
        };
        match result {
            Ok(()) => {
                instance.init_duration = started.elapsed();
                tracing::debug!(function = %function, instance = %id, pid, init_ms = instance.init_duration.as_millis() as u64, "instance started");
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
        self.dead.load(Ordering::Relaxed) || self.exit.borrow().is_some()
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// Kills the process group at once. Idempotent.
    pub fn kill(&self) {
        if !self.dead.swap(true, Ordering::Relaxed) {
            kill_group(self.pid);
        }
    }

    /// Kills the process and waits (briefly) until it has been reaped.
    pub async fn stop(&self) {
        self.kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), exited(self.exit.clone())).await;
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
        self.busy.store(true, Ordering::Relaxed);
        self.became_busy.notify_one();
        let result = self.run(work, answer, deadline, timeout).await;
        self.busy.store(false, Ordering::Relaxed);
        if result.is_err() {
            self.kill();
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
                self.api.work.send(work).await.map_err(|_| ())?;
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
                    let _ = tokio::time::timeout(Duration::from_millis(200), exited(self.exit.clone())).await;
                    let e = self.exit.borrow().clone();
                    Err(crashed(e))
                }
            },
            _ = exited(self.exit.clone()) => {
                let e = self.exit.borrow().clone();
                Err(crashed(e))
            }
            _ = tokio::time::sleep_until(deadline) => Err(InvokeError::Timeout {
                function: function(),
                timeout,
            }),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
