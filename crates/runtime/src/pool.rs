//! The instances of one function: acquire (warm, cold, or wait in a bounded queue), release,
//! scale to zero after the idle timeout, keep `min_instances` warm.
//!
//! Idle instances are a LIFO stack: the most recently used one serves next, so the rest age
//! out and scale-down happens naturally under falling load. A slot freed by a dead instance
//! is handed to the oldest waiter as a permission to cold-start, never lost.
//!
//! The pool tells the invoker's [`Reconciler`] when it next needs attention (the oldest idle
//! instance's idle deadline, a slot to refill under `min_instances`); nothing here polls.
//!
//! Every start, for an invocation or a refill, passes the function's crash-loop gate
//! (`crashloop.rs`, state kept here under the pool's lock): while the function's inits keep
//! failing, an invocation that would start a process fails at once instead.

use crate::crashloop::{secs, Change, CrashLoop, CrashLoopPolicy};
use crate::error::InvokeError;
use crate::instance::Instance;
use crate::logs::{LogLine, LogSink, Stream};
use crate::reconcile::Reconciler;
use crate::Prepared;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What a waiter is handed when its turn comes.
enum Grant {
    Warm(Arc<Instance>),
    /// A slot under `max_instances`: the waiter starts its own instance.
    Slot,
}

struct State {
    idle: Vec<(Arc<Instance>, Instant)>,
    /// Instances that exist or are starting (busy + idle + starting).
    total: u32,
    waiters: VecDeque<oneshot::Sender<Grant>>,
    stopped: bool,
    /// Set when a redeploy replaced this pool: where its callers go instead (`None` when the
    /// function was removed). A retired pool takes no new work; its busy instances finish.
    successor: Option<Option<Arc<Pool>>>,
    /// After a failed start under `min_instances`: when to try again, and the next back-off.
    refill_after: Option<(Instant, Duration)>,
    /// Failed inits in a row and the back-off they earned.
    crash_loop: CrashLoop,
}

/// First wait before a failed `min_instances` start is tried again; it doubles up to the cap.
const REFILL_BACKOFF: Duration = Duration::from_millis(100);
const REFILL_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A point-in-time view for metrics and `gust` status output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub total: u32,
    pub idle: u32,
    pub waiting: u32,
}

/// An instance lent to one invocation; give it back with [`Pool::release`].
pub struct Lease {
    pub instance: Arc<Instance>,
    pub cold: bool,
}

pub struct Pool {
    prepared: Arc<Prepared>,
    sink: Arc<dyn LogSink>,
    reconciler: Arc<Reconciler>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("function", &self.prepared.spec.name)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(
        prepared: Prepared,
        sink: Arc<dyn LogSink>,
        reconciler: Arc<Reconciler>,
        crash_loop: CrashLoopPolicy,
    ) -> Arc<Self> {
        Arc::new(Self {
            prepared: Arc::new(prepared),
            sink,
            reconciler,
            state: Mutex::new(State {
                idle: Vec::new(),
                total: 0,
                waiters: VecDeque::new(),
                stopped: false,
                successor: None,
                refill_after: None,
                crash_loop: CrashLoop::new(crash_loop),
            }),
        })
    }

    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    pub fn stats(&self) -> PoolStats {
        let s = self.state.lock().expect("pool lock");
        PoolStats {
            total: s.total,
            idle: s.idle.len() as u32,
            waiting: s.waiters.len() as u32,
        }
    }

    /// The process ids of the idle instances, oldest first.
    pub fn idle_pids(&self) -> Vec<i32> {
        let s = self.state.lock().expect("pool lock");
        s.idle.iter().map(|(i, _)| i.pid()).collect()
    }

    fn retry_after(&self) -> Duration {
        // A waiter frees up within about one function timeout; never suggest less than 1 s.
        self.prepared.spec.timeout.max(Duration::from_secs(1))
    }

    /// Lends an instance: a warm one, else a cold start under `max_instances`, else a place in
    /// the wait queue until `wait_until`, else `TooManyRequests`.
    pub async fn acquire(&self, wait_until: Instant) -> Result<Lease, InvokeError> {
        let scaling = &self.prepared.spec.scaling;
        let waiter = {
            let mut s = self.state.lock().expect("pool lock");
            if s.stopped {
                return Err(InvokeError::ShuttingDown);
            }
            while let Some((inst, _)) = s.idle.pop() {
                if inst.is_dead() {
                    s.total -= 1;
                    continue;
                }
                return Ok(Lease {
                    instance: inst,
                    cold: false,
                });
            }
            if s.total < scaling.max_instances {
                s.total += 1;
                None
            } else if (s.waiters.len() as u32) < scaling.max_queue {
                let (tx, rx) = oneshot::channel();
                s.waiters.push_back(tx);
                Some(rx)
            } else {
                return Err(self.too_many());
            }
        };
        match waiter {
            None => self.cold_start().await,
            Some(rx) => {
                let deadline = tokio::time::Instant::from_std(wait_until);
                match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(Grant::Warm(instance))) => Ok(Lease { instance, cold: false }),
                    Ok(Ok(Grant::Slot)) => self.cold_start().await,
                    Ok(Err(_)) => Err(InvokeError::ShuttingDown),
                    // Our sender stays queued but its receiver is gone; release() skips it.
                    Err(_) => Err(self.too_many()),
                }
            }
        }
    }

    /// Starts instances until the pool has `n` (at most `max_instances`) and keeps them idle:
    /// a deployment readies each new or changed function this way before traffic switches to
    /// it, as many as the version it replaces was running, so the switch costs no cold start
    /// and no loss of capacity, and a version whose init fails is refused while the running
    /// one keeps serving. The starts run at once; the first failure is the answer.
    pub async fn warm_up(self: &Arc<Self>, n: u32) -> Result<(), InvokeError> {
        let wanted = {
            let mut s = self.state.lock().expect("pool lock");
            if s.stopped {
                return Err(InvokeError::ShuttingDown);
            }
            let wanted = n.min(self.prepared.spec.scaling.max_instances).saturating_sub(s.total);
            s.total += wanted;
            wanted
        };
        let mut starts = tokio::task::JoinSet::new();
        for _ in 0..wanted {
            let pool = self.clone();
            starts.spawn(async move {
                let lease = pool.cold_start().await?;
                pool.release(lease.instance);
                Ok::<(), InvokeError>(())
            });
        }
        let mut first_error = None;
        while let Some(done) = starts.join_next().await {
            let result = done.unwrap_or_else(|e| Err(InvokeError::Platform(format!("a start task failed: {e}"))));
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn too_many(&self) -> InvokeError {
        InvokeError::TooManyRequests {
            function: self.prepared.spec.name.to_string(),
            retry_after: self.retry_after(),
        }
    }

    /// Starts an instance in a slot already counted in `total`, unless the function is in
    /// crash-loop back-off.
    async fn cold_start(&self) -> Result<Lease, InvokeError> {
        let admitted = {
            let mut s = self.state.lock().expect("pool lock");
            s.crash_loop.admit(Instant::now(), self.prepared.spec.name.as_str())
        };
        let started = match admitted {
            Ok(probe) => self.start(probe).await,
            Err(refused) => {
                tracing::debug!(function = %self.prepared.spec.name, "crash-loop back-off: no start");
                Err(refused)
            }
        };
        match started {
            Ok(inst) => Ok(Lease {
                instance: Arc::new(inst),
                cold: true,
            }),
            Err(e) => {
                self.free_slot();
                Err(e)
            }
        }
    }

    /// Starts an instance the crash-loop gate admitted and tells the gate how its init went.
    async fn start(&self, probe: bool) -> Result<Instance, InvokeError> {
        let mut attempt = Attempt {
            pool: self,
            probe,
            settled: false,
        };
        let result = self.prepared.start(self.sink.clone(), &self.reconciler).await;
        attempt.settled = true;
        let change = {
            let mut s = self.state.lock().expect("pool lock");
            match &result {
                Ok(_) => s.crash_loop.succeeded(),
                Err(InvokeError::InitFailed {
                    error_type, message, ..
                }) => s.crash_loop.failed(probe, Instant::now(), error_type, message),
                Err(_) => {
                    s.crash_loop.abandoned(probe);
                    None
                }
            }
        };
        if let Some(change) = change {
            self.tell(&change, &result);
        }
        if probe && self.prepared.spec.scaling.min_instances > 0 {
            // A refill may have been waiting for this probe's verdict.
            self.reconciler.wake();
        }
        result
    }

    /// The one line a crash-loop change is worth, on the function's own output (its logs,
    /// and `gust up`'s at warn for stderr, info for stdout).
    fn tell(&self, change: &Change, result: &Result<Instance, InvokeError>) {
        let function = &self.prepared.spec.name;
        let (stream, line) = match change {
            Change::BackedOff { failures, delay } => {
                let error = match result {
                    Err(InvokeError::InitFailed {
                        error_type, message, ..
                    }) => format!("{error_type}: {message}"),
                    _ => String::new(),
                };
                (
                    Stream::Stderr,
                    format!(
                        "[gust] crash-loop back-off: {failures} inits failed in a row, no new start for {}; the last init failed with {error}",
                        secs(*delay)
                    ),
                )
            }
            Change::Recovered { failures } => (
                Stream::Stdout,
                format!("[gust] crash-loop back-off over: an instance started after {failures} failed inits in a row"),
            ),
        };
        self.sink.line(LogLine {
            function: function.as_str().into(),
            instance: 0,
            request_id: None,
            stream,
            line,
        });
    }

    /// A slot was given up (an instance died or failed to start): pass it to a waiter.
    fn free_slot(&self) {
        let mut s = self.state.lock().expect("pool lock");
        while let Some(w) = s.waiters.pop_front() {
            if w.send(Grant::Slot).is_ok() {
                return;
            }
        }
        s.total -= 1;
        if !s.stopped && s.total < self.prepared.spec.scaling.min_instances {
            self.reconciler.wake();
        }
    }

    /// Returns an instance after an invocation. Dead instances give their slot away.
    pub fn release(&self, instance: Arc<Instance>) {
        if instance.is_dead() {
            drop(instance);
            self.free_slot();
            return;
        }
        let mut s = self.state.lock().expect("pool lock");
        if s.stopped {
            s.total -= 1;
            drop(s);
            instance.kill();
            return;
        }
        let mut grant = Grant::Warm(instance);
        while let Some(w) = s.waiters.pop_front() {
            match w.send(grant) {
                Ok(()) => return,
                Err(back) => grant = back,
            }
        }
        if let Grant::Warm(instance) = grant {
            let now = Instant::now();
            s.idle.push((instance, now));
            // Only a pool that may shrink has a deadline; the oldest idle instance's is
            // earlier than this one's, and already armed unless the stack was empty.
            if s.total > self.prepared.spec.scaling.min_instances {
                self.reconciler.due(now + self.prepared.spec.scaling.idle_timeout);
            }
        }
    }

    /// When this pool next needs [`reconcile`](Self::reconcile): now when it is under
    /// `min_instances` (after the back-off of a failed start, and the crash-loop back-off), else the idle deadline of its
    /// oldest idle instance if it may shrink, else never.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        let scaling = &self.prepared.spec.scaling;
        let s = self.state.lock().expect("pool lock");
        if s.stopped {
            return None;
        }
        if s.total < scaling.min_instances {
            let now = Instant::now();
            let refill = s.refill_after.map_or(now, |(at, _)| at);
            return s.crash_loop.next_start(now).map(|at| at.max(refill));
        }
        if s.total > scaling.min_instances {
            return s.idle.first().map(|(_, since)| *since + scaling.idle_timeout);
        }
        None
    }

    /// Stops instances idle longer than the idle timeout (keeping `min_instances`), and starts
    /// instances up to `min_instances`. Called by the invoker's reconcile loop when
    /// [`next_due`](Self::next_due) says so, or when an instance exits.
    pub async fn reconcile(&self) {
        let scaling = &self.prepared.spec.scaling;
        let expired: Vec<Arc<Instance>> = {
            let mut s = self.state.lock().expect("pool lock");
            if s.stopped {
                return;
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            // Oldest first (bottom of the stack).
            let mut i = 0;
            while i < s.idle.len() {
                let dead = s.idle[i].0.is_dead();
                let old = now.duration_since(s.idle[i].1) >= scaling.idle_timeout;
                if dead || (old && s.total > scaling.min_instances) {
                    let (inst, _) = s.idle.remove(i);
                    s.total -= 1;
                    expired.push(inst);
                } else {
                    i += 1;
                }
            }
            expired
        };
        for inst in expired {
            tracing::debug!(function = %self.prepared.spec.name, instance = %inst.id, "instance stopped (idle)");
            inst.stop().await;
        }
        loop {
            let probe = {
                let mut s = self.state.lock().expect("pool lock");
                if s.stopped || s.total >= scaling.min_instances {
                    return;
                }
                if s.refill_after.is_some_and(|(at, _)| Instant::now() < at) {
                    return;
                }
                let Ok(probe) = s.crash_loop.admit(Instant::now(), self.prepared.spec.name.as_str()) else {
                    return;
                };
                s.total += 1;
                probe
            };
            match self.start(probe).await {
                Ok(inst) => {
                    self.state.lock().expect("pool lock").refill_after = None;
                    self.release(Arc::new(inst));
                }
                Err(e) => {
                    let backoff = {
                        let mut s = self.state.lock().expect("pool lock");
                        let backoff = s
                            .refill_after
                            .map_or(REFILL_BACKOFF, |(_, b)| (b * 2).min(REFILL_BACKOFF_MAX));
                        s.refill_after = Some((Instant::now() + backoff, backoff));
                        backoff
                    };
                    self.free_slot();
                    tracing::warn!(function = %self.prepared.spec.name, error = %e, retry_in_ms = backoff.as_millis() as u64, "could not keep a warm instance");
                    return;
                }
            }
        }
    }

    /// Refuses new work and stops idle instances; busy ones are stopped when released.
    pub async fn stop(&self) {
        self.stop_with(None).await
    }

    /// A redeploy replaced this pool with `successor` (`None`: the function is gone). Callers
    /// that still hold this pool, and those waiting in its queue, are sent on to the
    /// successor ([`Pool::successor`]); idle instances stop now, busy ones when released, so
    /// an invocation in flight finishes on the version it started on.
    pub async fn retire(&self, successor: Option<Arc<Pool>>) {
        self.stop_with(Some(successor)).await
    }

    /// Where a caller of a retired pool goes: `Some(Some(pool))` to the successor, `Some(None)`
    /// when the function was removed, `None` when this pool was not retired.
    pub fn successor(&self) -> Option<Option<Arc<Pool>>> {
        self.state.lock().expect("pool lock").successor.clone()
    }

    async fn stop_with(&self, successor: Option<Option<Arc<Pool>>>) {
        let idle: Vec<_> = {
            let mut s = self.state.lock().expect("pool lock");
            s.stopped = true;
            if successor.is_some() {
                s.successor = successor;
            }
            // Dropped senders wake their waiters with `ShuttingDown`; the invoker then asks
            // `successor()` whether to go on to a new pool.
            s.waiters.clear();
            let idle: Vec<_> = s.idle.drain(..).map(|(i, _)| i).collect();
            s.total -= idle.len() as u32;
            idle
        };
        for inst in idle {
            inst.stop().await;
        }
    }
}

/// A start the crash-loop gate let through. Dropped before it was settled (its future was
/// cancelled), a probe gives its turn back so the function is not refused for ever.
struct Attempt<'a> {
    pool: &'a Pool,
    probe: bool,
    settled: bool,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut s = self.pool.state.lock().expect("pool lock");
            s.crash_loop.abandoned(self.probe);
        }
    }
}
