//! The one invoke path. Every trigger (HTTP route, event, schedule, `gust invoke`, the Lambda
//! Invoke API) builds an [`Invocation`] and calls [`Invoker::invoke`]; deadlines, instance
//! lending, crash and timeout handling, and the in-flight count for graceful shutdown live
//! here once.

use crate::error::{InvokeError, PrepareError};
use crate::executor::Executor;
use crate::instance::{error_message, Answer};
use crate::logs::LogSink;
use crate::pool::{Pool, PoolStats};
use bytes::Bytes;
use gust_model::{App, FunctionName, FunctionSpec};
use std::collections::HashMap;
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
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Event => "event",
            Self::Schedule => "schedule",
            Self::Direct => "direct",
            Self::Async => "async",
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
    pub trace_id: Option<String>,
    pub client_context: Option<String>,
}

impl Invocation {
    pub fn new(function: impl Into<String>, payload: impl Into<Bytes>, trigger: Trigger) -> Self {
        Self {
            function: function.into(),
            payload: payload.into(),
            trigger,
            request_id: None,
            trace_id: None,
            client_context: None,
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
}

/// The identity behind a `GUST_TOKEN`: which function of which app is calling the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformApi {
    pub app: String,
    pub function: String,
}

struct Deployed {
    pool: Arc<Pool>,
}

pub struct Invoker {
    executor: Executor,
    sink: Arc<dyn LogSink>,
    functions: RwLock<HashMap<String, Deployed>>,
    tokens: RwLock<HashMap<String, PlatformApi>>,
    in_flight: AtomicUsize,
    drained: Notify,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Invoker")
    }
}

/// How often pools are reconciled (idle instances reaped, minimum kept warm).
const RECONCILE_EVERY: Duration = Duration::from_millis(100);

struct InFlight<'a>(&'a Invoker);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Invoker {
    pub fn new(executor: Executor) -> Arc<Self> {
        let invoker = Arc::new(Self {
            sink: executor.sink(),
            executor,
            functions: RwLock::new(HashMap::new()),
            tokens: RwLock::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            drained: Notify::new(),
            shutting_down: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&invoker);
        tokio::spawn(reconcile_loop(weak));
        invoker
    }

    /// Prepares every function of `app` and makes them invokable. Nothing changes if any
    /// function cannot be prepared.
    pub fn deploy(&self, app: &App) -> Result<(), PrepareError> {
        let mut pools = Vec::new();
        let mut tokens = Vec::new();
        for spec in app.functions.values() {
            let token = new_token();
            let prepared = self
                .executor
                .prepare(Arc::new(spec.clone()), Some(&token))?;
            pools.push((
                spec.name.to_string(),
                Pool::new(prepared, self.sink.clone()),
            ));
            tokens.push((
                token,
                PlatformApi {
                    app: app.name.to_string(),
                    function: spec.name.to_string(),
                },
            ));
        }
        let old: Vec<Arc<Pool>> = {
            let mut functions = self.functions.write().expect("functions lock");
            pools
                .into_iter()
                .filter_map(|(name, pool)| {
                    functions.insert(name, Deployed { pool }).map(|d| d.pool)
                })
                .collect()
        };
        {
            let mut t = self.tokens.write().expect("tokens lock");
            t.retain(|_, caller| caller.app != app.name.as_str());
            t.extend(tokens);
        }
        for pool in old {
            tokio::spawn(async move { pool.stop().await });
        }
        Ok(())
    }

    /// The function a `GUST_TOKEN` belongs to.
    pub fn caller_for_token(&self, token: &str) -> Option<PlatformApi> {
        self.tokens.read().expect("tokens lock").get(token).cloned()
    }

    pub fn spec(&self, function: &str) -> Option<Arc<FunctionSpec>> {
        let f = self.functions.read().expect("functions lock");
        f.get(function).map(|d| d.pool.prepared().spec().clone())
    }

    pub fn function_names(&self) -> Vec<String> {
        let mut names: Vec<_> = self
            .functions
            .read()
            .expect("functions lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    pub fn pool_stats(&self, function: &str) -> Option<PoolStats> {
        let f = self.functions.read().expect("functions lock");
        f.get(function).map(|d| d.pool.stats())
    }

    fn pool(&self, function: &str) -> Option<Arc<Pool>> {
        self.functions
            .read()
            .expect("functions lock")
            .get(function)
            .map(|d| d.pool.clone())
    }

    pub async fn invoke(&self, inv: Invocation) -> Result<InvokeOutput, InvokeError> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _guard = InFlight(self);
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(InvokeError::ShuttingDown);
        }
        if FunctionName::new(&inv.function).is_err() {
            return Err(InvokeError::FunctionNotFound(inv.function));
        }
        let pool = self
            .pool(&inv.function)
            .ok_or_else(|| InvokeError::FunctionNotFound(inv.function.clone()))?;
        let timeout = pool.prepared().spec().timeout;
        let request_id: Arc<str> = inv
            .request_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
            .into();

        // Waiting for an instance is bounded by the function timeout too; past it the caller
        // is told to come back later (429) rather than held indefinitely.
        let lease = pool.acquire(Instant::now() + timeout).await?;
        let instance = lease.instance;
        let started = Instant::now();
        let result = instance
            .invoke(
                request_id.clone(),
                inv.payload,
                started + timeout,
                timeout,
                inv.trace_id,
                inv.client_context,
            )
            .await;
        let duration = started.elapsed();
        let init_duration = lease.cold.then_some(instance.init_duration);
        let prewarmed = lease.cold && instance.prewarmed;
        pool.release(instance);
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
            billed_duration: Duration::from_millis(duration.as_micros().div_ceil(1000) as u64),
        })
    }

    /// Graceful shutdown: refuse new invocations, let in-flight ones finish (each is bounded by
    /// its function timeout) up to `grace`, then stop every instance.
    pub async fn shutdown(&self, grace: Duration) {
        self.shutting_down.store(true, Ordering::Release);
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
        let pools: Vec<Arc<Pool>> = self
            .functions
            .read()
            .expect("functions lock")
            .values()
            .map(|d| d.pool.clone())
            .collect();
        for pool in pools {
            pool.stop().await;
        }
        self.executor.stop_spares();
    }

    /// Prewarmed runtimes ready to be specialised, across all runtimes.
    pub fn prewarmed_ready(&self) -> usize {
        self.executor.spares_ready()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

async fn reconcile_loop(invoker: Weak<Invoker>) {
    let mut tick = tokio::time::interval(RECONCILE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inv) = invoker.upgrade() else { return };
        if inv.shutting_down.load(Ordering::Acquire) {
            return;
        }
        let pools: Vec<Arc<Pool>> = inv
            .functions
            .read()
            .expect("functions lock")
            .values()
            .map(|d| d.pool.clone())
            .collect();
        drop(inv);
        for pool in pools {
            pool.reconcile().await;
        }
    }
}
