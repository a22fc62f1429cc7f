//! The one invoke path. Every trigger (HTTP route, event, schedule, `gust invoke`, the Lambda
//! Invoke API) builds an [`Invocation`] and calls [`Invoker::invoke`]; deadlines, instance
//! lending, crash and timeout handling, and the in-flight count for graceful shutdown live
//! here once.

use crate::credentials::{AwsSessionKey, Callers, FunctionCredentials};
use crate::error::{InvokeError, PrepareError};
use crate::executor::Executor;
use crate::instance::{error_message, Answer};
use crate::logs::{platform, LogLine, LogSink, Stream};
use crate::pool::{Pool, PoolStats};
use crate::reconcile::Reconciler;
use crate::telemetry::{names, Metrics, Telemetry};
use bytes::Bytes;
use gust_model::{App, FunctionName, FunctionSpec, InvocationRecord, InvokeSpan, SpanRecord, TraceParent};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What caused an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Http,
    Event,
    Schedule,
    Direct,
    Async,
    /// A gateway Lambda authorizer deciding on a request.
    Authorizer,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Event => "event",
            Self::Schedule => "schedule",
            Self::Direct => "direct",
            Self::Async => "async",
            Self::Authorizer => "authorizer",
        }
    }
}

/// One call to a function.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    pub payload: Bytes,
    pub trigger: Trigger,
    /// Set by the caller when it already has one (the gateway's request id); else generated.
    pub request_id: Option<String>,
    /// This invocation's own span context (its trace id and span id); a new trace when `None`.
    pub trace: Option<TraceParent>,
    /// The span that caused this invocation (the gateway request, the event delivery).
    pub parent_span: Option<String>,
    pub client_context: Option<String>,
    /// How long to wait for an instance at most (default, and never more than, the function
    /// timeout). Event delivery bounds it so a claimed batch cannot outlive its visibility.
    pub acquire_timeout: Option<Duration>,
}

impl Invocation {
    pub fn new(function: impl Into<String>, payload: impl Into<Bytes>, trigger: Trigger) -> Self {
        Self {
            function: function.into(),
            payload: payload.into(),
            trigger,
            request_id: None,
            trace: None,
            parent_span: None,
            client_context: None,
            acquire_timeout: None,
        }
    }
}

/// A function's answer (success or a handler error, which is still an answer).
#[derive(Debug, Clone)]
pub struct InvokeOutput {
    pub request_id: Arc<str>,
    pub payload: Bytes,
    /// `Some(errorType)` when the handler reported an error; `payload` is the Lambda error JSON.
    pub function_error: Option<String>,
    pub cold_start: bool,
    /// The cold start specialised a prewarmed runtime instead of starting a process.
    pub prewarmed: bool,
    pub init_duration: Option<Duration>,
    pub duration: Duration,
    pub billed_duration: Duration,
    /// The invocation's span context (what the function saw as its trace).
    pub trace: TraceParent,
}

/// The identity behind a `GUST_TOKEN`: which function of which app is calling the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformApi {
    pub app: String,
    pub function: String,
}

struct RunContext {
    pool: Arc<Pool>,
    sink: Arc<dyn LogSink>,
    metrics: Arc<Metrics>,
    telemetry: Arc<dyn Telemetry>,
    _guard: InFlight,
}

struct Report<'a> {
    spec: &'a FunctionSpec,
    request_id: &'a str,
    trigger: &'static str,
    trace: &'a TraceParent,
    parent_span: Option<String>,
    accepted_us: i64,
    started_us: i64,
    duration: Duration,
    billed_duration: Duration,
    init_duration: Option<Duration>,
    prewarmed: bool,
    outcome: &'static str,
    error_type: Option<String>,
}

/// How long an invocation's end waits at most for the function's output pipes to be read.
const OUTPUT_DRAIN_WAIT: Duration = Duration::from_millis(50);

fn epoch_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

struct Deployed {
    pool: Arc<Pool>,
    at: std::time::SystemTime,
    /// The app it belongs to (a redeploy of one app leaves other apps' functions alone).
    app: String,
    /// The granted secrets its instances got, and its code's revision, as deployed: a
    /// redeploy keeps the pool (and its warm instances) when these and the spec are unchanged.
    secrets: Vec<(String, String)>,
    code: Option<String>,
}

/// The most instances a redeploy starts for one function before its switch.
const WARM_UP_MAX: u32 = 8;

/// What [`Invoker::redeploy`] did, by function name (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redeployed {
    /// New functions.
    pub added: Vec<String>,
    /// Functions whose spec, secrets or code changed: a new pool; the old one drains.
    pub replaced: Vec<String>,
    /// Unchanged functions: their pools and warm instances stay.
    pub kept: Vec<String>,
    /// Functions the new version no longer has: their pools drain and stop.
    pub removed: Vec<String>,
}

/// A deployed function as the Lambda API describes it.
#[derive(Debug, Clone)]
pub struct DeployedFunction {
    pub spec: Arc<FunctionSpec>,
    pub arn: String,
    /// When this Gust deployed it.
    pub at: std::time::SystemTime,
}

pub struct Invoker {
    executor: Executor,
    telemetry: Arc<dyn Telemetry>,
    metrics: Arc<Metrics>,
    sink: Arc<dyn LogSink>,
    functions: RwLock<HashMap<String, Deployed>>,
    /// Who holds which `GUST_TOKEN` and AWS session key (`credentials.rs`).
    callers: RwLock<Callers>,
    in_flight: Arc<AtomicUsize>,
    drained: Arc<Notify>,
    shutting_down: AtomicBool,
    reconciler: Arc<Reconciler>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Invoker")
    }
}

/// Counts an invocation as in flight until dropped (graceful shutdown waits for zero).
struct InFlight {
    count: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl InFlight {
    fn new(count: &Arc<AtomicUsize>, drained: &Arc<Notify>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self {
            count: count.clone(),
            drained: drained.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }
}

impl Invoker {
    pub fn new(executor: Executor, telemetry: Arc<dyn Telemetry>) -> Arc<Self> {
        let invoker = Arc::new(Self {
            telemetry,
            metrics: Arc::new(Metrics::default()),
            sink: executor.sink(),
            executor,
            functions: RwLock::new(HashMap::new()),
            callers: RwLock::new(Callers::default()),
            in_flight: Arc::new(AtomicUsize::new(0)),
            drained: Arc::new(Notify::new()),
            shutting_down: AtomicBool::new(false),
            reconciler: Arc::new(Reconciler::default()),
        });
        let weak = Arc::downgrade(&invoker);
        tokio::spawn(reconcile_loop(weak, invoker.reconciler.clone()));
        invoker
    }

    /// Prepares every function of `app` and makes them invokable. Nothing changes if any
    /// function cannot be prepared.
    pub fn deploy(&self, app: &App) -> Result<(), PrepareError> {
        self.deploy_with(app, &HashMap::new(), None)
    }

    /// Deploys `app` (or only the functions in `only`, leaving the others' warm instances
    /// alone) with each function's granted secrets as environment variables. Replaced pools
    /// retire their warm instances; in-flight invocations finish on the old ones.
    pub fn deploy_with(
        &self,
        app: &App,
        secrets: &HashMap<String, Vec<(String, String)>>,
        only: Option<&[String]>,
    ) -> Result<(), PrepareError> {
        let mut pools = Vec::new();
        let mut tokens = Vec::new();
        let selected = |name: &str| only.is_none_or(|o| o.iter().any(|n| n == name));
        for spec in app.functions.values().filter(|s| selected(s.name.as_str())) {
            let token = FunctionCredentials::generate();
            let env = secrets.get(spec.name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let prepared = self.executor.prepare(Arc::new(spec.clone()), Some(&token), env)?;
            pools.push((
                spec.name.to_string(),
                Pool::new(
                    prepared,
                    self.sink.clone(),
                    self.reconciler.clone(),
                    self.executor.config().crash_loop,
                ),
            ));
            tokens.push((
                token,
                PlatformApi {
                    app: app.name.to_string(),
                    function: spec.name.to_string(),
                },
            ));
        }
        let old: Vec<(Arc<Pool>, Arc<Pool>)> = {
            let mut functions = self.functions.write().expect("functions lock");
            pools
                .into_iter()
                .filter_map(|(name, pool)| {
                    let at = std::time::SystemTime::now();
                    let code = functions.get(&name).and_then(|d| d.code.clone());
                    let env = secrets.get(&name).cloned().unwrap_or_default();
                    let deployed = Deployed {
                        pool: pool.clone(),
                        at,
                        app: app.name.to_string(),
                        secrets: env,
                        code,
                    };
                    functions.insert(name, deployed).map(|d| (d.pool, pool))
                })
                .collect()
        };
        {
            let mut callers = self.callers.write().expect("callers lock");
            callers.retain(|caller| caller.app != app.name.as_str() || !selected(&caller.function));
            for (creds, caller) in tokens {
                callers.insert(creds, caller);
            }
        }
        for (pool, next) in old {
            tokio::spawn(async move { pool.retire(Some(next)).await });
        }
        // New pools may have `min_instances` to start.
        self.reconciler.wake();
        Ok(())
    }

    /// Switches `app` to a new version: every function whose spec, granted secrets
    /// (`secrets`) or code revision (`code`, by function name; a changed value means changed
    /// code) differs gets a new pool, atomically for the whole app; unchanged functions keep
    /// their pools and warm instances; functions the app no longer has are removed. Replaced
    /// and removed pools drain: invocations in flight finish on the old version, and callers
    /// waiting for an instance go on to the new one. Nothing changes if any function cannot
    /// be prepared, or, with `warm_up`, if a new or changed function's first instance does not
    /// start (its init error is the answer): the switch then costs no cold start either.
    pub async fn redeploy(
        &self,
        app: &App,
        secrets: &HashMap<String, Vec<(String, String)>>,
        code: &HashMap<String, String>,
        warm_up: bool,
    ) -> Result<Redeployed, PrepareError> {
        let mut report = Redeployed::default();
        let mut fresh = Vec::new();
        {
            let functions = self.functions.read().expect("functions lock");
            for spec in app.functions.values() {
                let name = spec.name.as_str();
                let env = secrets.get(name).cloned().unwrap_or_default();
                let revision = code.get(name).cloned();
                match functions.get(name) {
                    Some(d)
                        if d.app == app.name.as_str()
                            && **d.pool.prepared().spec() == *spec
                            && d.secrets == env
                            && d.code == revision =>
                    {
                        report.kept.push(name.to_string());
                    }
                    Some(_) => {
                        report.replaced.push(name.to_string());
                        fresh.push((spec, env, revision));
                    }
                    None => {
                        report.added.push(name.to_string());
                        fresh.push((spec, env, revision));
                    }
                }
            }
            report.removed = functions
                .iter()
                .filter(|(name, d)| {
                    d.app == app.name.as_str() && !app.functions.keys().any(|f| f.as_str() == name.as_str())
                })
                .map(|(name, _)| name.clone())
                .collect();
        }
        let warm_counts: HashMap<String, u32> = {
            let functions = self.functions.read().expect("functions lock");
            report
                .replaced
                .iter()
                .filter_map(|n| functions.get(n).map(|d| (n.clone(), d.pool.stats().total)))
                .collect()
        };
        // Prepared outside the lock: a failure leaves the running version as it was.
        let mut prepared = Vec::new();
        for (spec, env, revision) in fresh {
            let token = FunctionCredentials::generate();
            let p = self.executor.prepare(Arc::new(spec.clone()), Some(&token), &env)?;
            let pool = Pool::new(
                p,
                self.sink.clone(),
                self.reconciler.clone(),
                self.executor.config().crash_loop,
            );
            prepared.push((spec.name.to_string(), pool, env, revision, token));
        }
        if warm_up {
            let mut starts = tokio::task::JoinSet::new();
            for (name, pool, ..) in &prepared {
                // As many instances as the version it replaces runs (at least one, at most
                // `WARM_UP_MAX`), so the switch keeps the function's capacity.
                let n = warm_counts.get(name).copied().unwrap_or(1).clamp(1, WARM_UP_MAX);
                let (name, pool) = (name.clone(), pool.clone());
                starts.spawn(async move { (name, pool.warm_up(n).await) });
            }
            let mut failed = None;
            while let Some(done) = starts.join_next().await {
                match done {
                    Ok((_, Ok(()))) => {}
                    Ok((function, Err(e))) => {
                        failed.get_or_insert(PrepareError {
                            function,
                            message: format!("its first instance did not start: {e}"),
                        });
                    }
                    Err(e) => {
                        failed.get_or_insert(PrepareError {
                            function: String::new(),
                            message: format!("a start task failed: {e}"),
                        });
                    }
                }
            }
            if let Some(e) = failed {
                for (_, pool, ..) in prepared {
                    pool.stop().await;
                }
                return Err(e);
            }
        }
        let mut retiring: Vec<(Arc<Pool>, Option<Arc<Pool>>)> = Vec::new();
        {
            let mut functions = self.functions.write().expect("functions lock");
            let mut callers = self.callers.write().expect("callers lock");
            let changed: std::collections::HashSet<&str> = prepared
                .iter()
                .map(|(n, ..)| n.as_str())
                .chain(report.removed.iter().map(String::as_str))
                .collect();
            callers.retain(|caller| caller.app != app.name.as_str() || !changed.contains(caller.function.as_str()));
            for name in &report.removed {
                if let Some(d) = functions.remove(name) {
                    retiring.push((d.pool, None));
                }
            }
            for (name, pool, env, revision, token) in prepared {
                callers.insert(
                    token,
                    PlatformApi {
                        app: app.name.to_string(),
                        function: name.clone(),
                    },
                );
                let deployed = Deployed {
                    pool: pool.clone(),
                    at: std::time::SystemTime::now(),
                    app: app.name.to_string(),
                    secrets: env,
                    code: revision,
                };
                if let Some(old) = functions.insert(name, deployed) {
                    retiring.push((old.pool, Some(pool)));
                }
            }
        }
        for (pool, next) in retiring {
            tokio::spawn(async move { pool.retire(next).await });
        }
        self.reconciler.wake();
        for list in [
            &mut report.added,
            &mut report.replaced,
            &mut report.kept,
            &mut report.removed,
        ] {
            list.sort();
        }
        Ok(report)
    }

    /// The function a `GUST_TOKEN` belongs to.
    pub fn caller_for_token(&self, token: &str) -> Option<PlatformApi> {
        self.callers.read().expect("callers lock").for_token(token)
    }

    /// The function an AWS session key (its access key id) was issued to, with the key.
    pub fn caller_for_aws_key(&self, access_key_id: &str) -> Option<(AwsSessionKey, PlatformApi)> {
        self.callers.read().expect("callers lock").for_aws_key(access_key_id)
    }

    pub fn spec(&self, function: &str) -> Option<Arc<FunctionSpec>> {
        let f = self.functions.read().expect("functions lock");
        f.get(function).map(|d| d.pool.prepared().spec().clone())
    }

    /// The revision (snapshot digest) of the code a function runs; `None` when it runs in place.
    pub fn code_revision(&self, function: &str) -> Option<String> {
        let f = self.functions.read().expect("functions lock");
        f.get(function).and_then(|d| d.code.clone())
    }

    /// A deployed function's spec, ARN and deployment time.
    pub fn deployed(&self, function: &str) -> Option<DeployedFunction> {
        let f = self.functions.read().expect("functions lock");
        f.get(function).map(|d| DeployedFunction {
            spec: d.pool.prepared().spec().clone(),
            arn: d.pool.prepared().function_arn().to_string(),
            at: d.at,
        })
    }

    pub fn function_names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.functions.read().expect("functions lock").keys().cloned().collect();
        names.sort();
        names
    }

    pub fn pool_stats(&self, function: &str) -> Option<PoolStats> {
        let f = self.functions.read().expect("functions lock");
        f.get(function).map(|d| d.pool.stats())
    }

    /// A deployed function's instance pool (benchmarks and diagnostics; invocations go through
    /// [`Invoker::invoke`]).
    pub fn pool(&self, function: &str) -> Option<Arc<Pool>> {
        self.functions
            .read()
            .expect("functions lock")
            .get(function)
            .map(|d| d.pool.clone())
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn telemetry(&self) -> &Arc<dyn Telemetry> {
        &self.telemetry
    }

    pub async fn invoke(&self, inv: Invocation) -> Result<InvokeOutput, InvokeError> {
        let guard = InFlight::new(&self.in_flight, &self.drained);
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(InvokeError::ShuttingDown);
        }
        if FunctionName::new(&inv.function).is_err() {
            return Err(InvokeError::FunctionNotFound(inv.function));
        }
        let pool = self
            .pool(&inv.function)
            .ok_or_else(|| InvokeError::FunctionNotFound(inv.function.clone()))?;
        // A caller that goes away (an HTTP client that disconnects drops its request future)
        // must not abandon an instance in the middle of an invocation, or a start slot, or a
        // place in the wait queue: as with Lambda, the invocation completes and its instance
        // goes back to the pool. It runs in the caller's task, and only what is left of it
        // when the caller goes away moves to a task of its own (a spawn per invocation cost a
        // scheduler hop and a cross-thread wake-up on every request).
        let ctx = RunContext {
            pool,
            sink: self.sink.clone(),
            metrics: self.metrics.clone(),
            telemetry: self.telemetry.clone(),
            _guard: guard,
        };
        FinishOnDrop::new(run_invocation(ctx, inv)).await
    }

    /// Graceful shutdown: refuse new invocations, let in-flight ones finish (each is bounded by
    /// its function timeout) up to `grace`, then stop every instance.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::Release);
        self.reconciler.wake();
        let wait = async {
            loop {
                let notified = self.drained.notified();
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(grace, wait).await.is_err() {
            tracing::warn!(
                in_flight = self.in_flight.load(Ordering::Acquire),
                "shutdown grace period over; stopping instances with invocations in flight"
            );
        }
        let pools = self.pools();
        for pool in pools {
            pool.stop().await;
        }
        self.executor.stop_spares();
    }

    /// Prewarmed runtimes ready to be specialised, across all runtimes.
    pub fn prewarmed_ready(&self) -> usize {
        self.executor.spares_ready()
    }

    /// Process ids of the prewarmed runtimes ready now (for diagnostics and tests).
    pub fn prewarmed_pids(&self) -> Vec<i32> {
        self.executor.spare_pids()
    }

    fn pools(&self) -> Vec<Arc<Pool>> {
        self.functions
            .read()
            .expect("functions lock")
            .values()
            .map(|d| d.pool.clone())
            .collect()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

type Running = Pin<Box<dyn Future<Output = Result<InvokeOutput, InvokeError>> + Send>>;

/// An invocation polled in its caller's task that, when the caller drops it unfinished,
/// finishes in a task of its own instead of being cancelled. A panic inside it answers a
/// platform error instead of unwinding through the caller.
struct FinishOnDrop {
    inner: Option<Running>,
}

impl FinishOnDrop {
    fn new(fut: impl Future<Output = Result<InvokeOutput, InvokeError>> + Send + 'static) -> Self {
        Self {
            inner: Some(Box::pin(fut)),
        }
    }
}

impl Future for FinishOnDrop {
    type Output = Result<InvokeOutput, InvokeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(Err(InvokeError::Platform(
                "the invocation was polled after it ended".into(),
            )));
        };
        let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(out) => out,
            Err(_) => std::task::Poll::Ready(Err(InvokeError::Platform(
                "the invocation task failed: it panicked".into(),
            ))),
        };
        if out.is_ready() {
            self.inner = None;
        }
        out
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take() {
            // Outside a runtime (it is shutting down) there is nothing left to finish on.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(rest);
            }
        }
    }
}

async fn run_invocation(ctx: RunContext, inv: Invocation) -> Result<InvokeOutput, InvokeError> {
    let RunContext {
        mut pool,
        sink,
        metrics,
        telemetry,
        _guard,
    } = ctx;
    let mut spec = pool.prepared().spec().clone();
    let timeout = spec.timeout;
    let request_id: Arc<str> = inv
        .request_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
        .into();
    let trace = inv.trace.unwrap_or_else(TraceParent::new_root);
    let accepted_us = epoch_us();
    let trigger = inv.trigger.as_str();
    let function_name = spec.name.clone();
    let say = |lines: &[String]| {
        for line in lines {
            sink.line(LogLine {
                function: function_name.as_str().into(),
                instance: 0,
                request_id: Some(request_id.clone()),
                stream: Stream::Platform,
                line: line.clone(),
            });
        }
    };

    // Waiting for an instance is bounded by the function timeout too; past it the caller
    // is told to come back later (429) rather than held indefinitely.
    let wait = inv.acquire_timeout.map_or(timeout, |w| w.min(timeout));
    let acquiring = Instant::now();
    let acquired = loop {
        match pool.acquire(acquiring + wait).await {
            // A redeploy retired this pool while the invocation held it or waited in its
            // queue: it goes on to the new version (the same deadline), or, if the function
            // was removed, is answered as for a function that does not exist.
            Err(InvokeError::ShuttingDown) => match pool.successor() {
                Some(Some(next)) => {
                    pool = next;
                    spec = pool.prepared().spec().clone();
                }
                Some(None) => break Err(InvokeError::FunctionNotFound(inv.function.clone())),
                None => break Err(InvokeError::ShuttingDown),
            },
            other => break other,
        }
    };
    let lease = match acquired {
        Ok(l) => l,
        Err(e) => {
            if matches!(e, InvokeError::TooManyRequests { .. }) {
                metrics.incr(names::THROTTLES, &[("function", &inv.function)], 1);
            }
            if let InvokeError::InitFailed {
                backoff, error_type, ..
            } = &e
            {
                // The function never ran, but the invocation failed because of it: recorded
                // as any other failure. A failed init is a cold start (its time includes any
                // wait for a slot); one refused by the crash-loop back-off started nothing.
                // Its details are in the function's log (public callers get none of them).
                let init = backoff.is_none().then(|| acquiring.elapsed());
                say(&[platform::start(&request_id)]);
                // The whole error: the init's own message, and the back-off's state when in it.
                say(&platform::init_failed(&request_id, init, error_type, &e.to_string()));
                say(&[
                    platform::end(&request_id),
                    platform::report(
                        &request_id,
                        &platform::Report {
                            duration: Duration::ZERO,
                            billed: Duration::ZERO,
                            memory_mb: spec.memory_mb,
                            max_memory_used_mb: 0,
                            init,
                        },
                    ),
                ]);
                report(
                    &metrics,
                    telemetry.as_ref(),
                    Report {
                        spec: &spec,
                        request_id: &request_id,
                        trigger,
                        trace: &trace,
                        parent_span: inv.parent_span,
                        accepted_us,
                        started_us: epoch_us(),
                        duration: Duration::ZERO,
                        billed_duration: Duration::ZERO,
                        init_duration: backoff.is_none().then(|| acquiring.elapsed()),
                        prewarmed: false,
                        outcome: "init_error",
                        error_type: Some(e.lambda_error_type().to_string()),
                    },
                );
            }
            return Err(e);
        }
    };
    let instance = lease.instance;
    say(&[platform::start(&request_id)]);
    let started = Instant::now();
    let started_us = epoch_us();
    let result = instance
        .invoke(
            request_id.clone(),
            inv.payload,
            started + timeout,
            timeout,
            Some(trace.to_xray()),
            inv.client_context,
        )
        .await;
    let duration = started.elapsed();
    let init_duration = lease.cold.then_some(instance.init_duration);
    let prewarmed = lease.cold && instance.prewarmed;
    let billed_duration = Duration::from_millis(duration.as_micros().div_ceil(1000) as u64);
    // What the function printed before it answered comes before END and REPORT.
    instance.output_drained(Instant::now() + OUTPUT_DRAIN_WAIT).await;
    let max_memory_used_mb = match &result {
        Err(InvokeError::OutOfMemory { limit_mb, .. }) => Some(*limit_mb as u64),
        _ => instance.max_memory_used_mb(),
    };
    match &result {
        Err(InvokeError::Timeout { timeout, .. }) => say(&[platform::timed_out(&request_id, *timeout)]),
        Err(InvokeError::Crashed { detail, .. }) => say(&platform::exited(&request_id, detail, "Runtime.ExitError")),
        Err(InvokeError::OutOfMemory { .. }) => {
            say(&platform::exited(&request_id, "signal: killed", "Runtime.OutOfMemory"))
        }
        _ => {}
    }
    say(&[
        platform::end(&request_id),
        platform::report(
            &request_id,
            &platform::Report {
                duration,
                billed: billed_duration,
                memory_mb: spec.memory_mb,
                max_memory_used_mb: max_memory_used_mb.unwrap_or(0),
                init: init_duration,
            },
        ),
    ]);
    pool.release(instance);

    let (outcome, error_type) = match &result {
        Ok(Answer::Ok(_)) => ("success", None),
        Ok(Answer::FunctionError { error_type, .. }) => ("error", Some(error_type.clone())),
        Err(e) => (
            match e {
                InvokeError::Timeout { .. } => "timeout",
                InvokeError::Crashed { .. } => "crash",
                InvokeError::OutOfMemory { .. } => "out_of_memory",
                InvokeError::InitFailed { .. } => "init_error",
                InvokeError::ResponseTooLarge { .. } => "too_large",
                _ => "platform_error",
            },
            Some(e.lambda_error_type().to_string()),
        ),
    };
    report(
        &metrics,
        telemetry.as_ref(),
        Report {
            spec: &spec,
            request_id: &request_id,
            trigger,
            trace: &trace,
            parent_span: inv.parent_span,
            accepted_us,
            started_us,
            duration,
            billed_duration,
            init_duration,
            prewarmed,
            outcome,
            error_type: error_type.clone(),
        },
    );

    let answer = result?;
    let (payload, function_error) = match answer {
        Answer::Ok(body) => (body, None),
        Answer::FunctionError { error_type, body } => {
            tracing::debug!(function = %inv.function, request_id = %request_id, error_type, message = %error_message(&body), "function returned an error");
            (body, Some(error_type))
        }
    };
    Ok(InvokeOutput {
        request_id,
        payload,
        function_error,
        cold_start: lease.cold,
        prewarmed,
        init_duration,
        duration,
        billed_duration,
        trace,
    })
}

/// The one place invocation records, spans and metrics are produced.
fn report(metrics: &Metrics, telemetry: &dyn Telemetry, r: Report<'_>) {
    let function = r.spec.name.as_str();
    let m = metrics;
    m.incr(
        names::INVOCATIONS,
        &[("function", function), ("trigger", r.trigger), ("outcome", r.outcome)],
        1,
    );
    m.observe(
        names::INVOCATION_DURATION,
        &[("function", function)],
        r.duration.as_secs_f64(),
    );
    if let Some(init) = r.init_duration {
        let prewarmed = if r.prewarmed { "true" } else { "false" };
        m.incr(
            names::COLD_STARTS,
            &[("function", function), ("prewarmed", prewarmed)],
            1,
        );
        m.observe(names::INIT_DURATION, &[("function", function)], init.as_secs_f64());
        telemetry.span(SpanRecord {
            trace_id: r.trace.trace_id.clone(),
            span_id: r.trace.child().span_id,
            parent_id: Some(r.trace.span_id.clone()),
            name: format!("cold start {function}"),
            kind: "internal".into(),
            start_us: r.started_us - init.as_micros() as i64,
            duration_us: init.as_micros() as u64,
            error: r.outcome == "init_error",
            attributes: vec![("prewarmed".into(), prewarmed.into())],
        });
    }
    let wait_us = (r.started_us - r.accepted_us).max(0) as u64;
    telemetry.invocation(InvocationRecord {
        request_id: r.request_id.to_string(),
        function: function.into(),
        trigger: r.trigger.into(),
        start_ms: r.accepted_us / 1000,
        duration_us: r.duration.as_micros() as u64,
        billed_ms: r.billed_duration.as_millis() as u64,
        memory_mb: r.spec.memory_mb,
        cold_start: r.init_duration.is_some(),
        init_us: r.init_duration.map(|d| d.as_micros() as u64),
        outcome: r.outcome.into(),
        error_type: r.error_type,
        trace_id: Some(r.trace.trace_id.clone()),
        span: Some(InvokeSpan {
            span_id: r.trace.span_id.clone(),
            parent_id: r.parent_span,
            accepted_us: r.accepted_us,
            wait_us,
        }),
    });
}

/// Reaps idle instances and keeps `min_instances` warm, waking only when a pool has something
/// due (see `reconcile.rs`): no polling, so an idle platform takes no wake-ups.
async fn reconcile_loop(invoker: Weak<Invoker>, reconciler: Arc<Reconciler>) {
    loop {
        let Some(inv) = invoker.upgrade() else { return };
        if inv.shutting_down.load(Ordering::Acquire) {
            return;
        }
        reconciler.disarm();
        let pools = inv.pools();
        drop(inv);
        let mut next: Option<Instant> = None;
        for pool in pools {
            pool.reconcile().await;
            next = next.into_iter().chain(pool.next_due()).min();
        }
        reconciler.sleep(next).await;
    }
}

impl Drop for Invoker {
    fn drop(&mut self) {
        // Lets the reconcile loop see that the invoker is gone and end.
        self.reconciler.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[tokio::test]
    async fn an_invocation_dropped_by_its_caller_still_runs_to_the_end() {
        let finished = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let done = finished.clone();
        let fut = FinishOnDrop::new(async move {
            let _ = started_tx.send(());
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, Ordering::SeqCst);
            Err(InvokeError::Platform("finished".into()))
        });
        // The caller polls it until it is under way, then goes away.
        let caller = tokio::spawn(fut);
        started_rx.await.unwrap();
        caller.abort();
        let _ = caller.await;
        assert!(!finished.load(Ordering::SeqCst), "dropped before its end");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !finished.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the rest never ran in a task of its own");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_panicking_invocation_answers_a_platform_error() {
        let out = FinishOnDrop::new(async {
            if std::hint::black_box(true) {
                panic!("a bug");
            }
            Err(InvokeError::Platform("unreachable".into()))
        })
        .await;
        assert!(matches!(out, Err(InvokeError::Platform(m)) if m.contains("panicked")));
    }
}
