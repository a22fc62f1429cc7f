//! The instances of one function: acquire (warm, cold, or wait in a bounded queue), release,
//! scale to zero after the idle timeout, keep `min_instances` warm.
//!
//! Idle instances are a LIFO stack: the most recently used one serves next, so the rest age
//! out and scale-down happens naturally under falling load. A slot freed by a dead instance
//! is handed to the oldest waiter as a permission to cold-start, never lost.

use crate::error::InvokeError;
use crate::instance::Instance;
use crate::logs::LogSink;
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
}

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
    pub fn new(prepared: Prepared, sink: Arc<dyn LogSink>) -> Arc<Self> {
        Arc::new(Self {
            prepared: Arc::new(prepared),
            sink,
            state: Mutex::new(State {
                idle: Vec::new(),
                total: 0,
                waiters: VecDeque::new(),
                stopped: false,
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

    fn too_many(&self) -> InvokeError {
        InvokeError::TooManyRequests {
            function: self.prepared.spec.name.to_string(),
            retry_after: self.retry_after(),
        }
    }

    /// Starts an instance in a slot already counted in `total`.
    async fn cold_start(&self) -> Result<Lease, InvokeError> {
        match self.prepared.start(self.sink.clone()).await {
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

    /// A slot was given up (an instance died or failed to start): pass it to a waiter.
    fn free_slot(&self) {
        let mut s = self.state.lock().expect("pool lock");
        while let Some(w) = s.waiters.pop_front() {
            if w.send(Grant::Slot).is_ok() {
                return;
            }
        }
        s.total -= 1;
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
            s.idle.push((instance, Instant::now()));
        }
    }

    /// Stops instances idle longer than the idle timeout (keeping `min_instances`), and starts
    /// instances up to `min_instances`. Called periodically by the invoker's reaper.
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
            {
                let mut s = self.state.lock().expect("pool lock");
                if s.stopped || s.total >= scaling.min_instances {
                    return;
                }
                s.total += 1;
            }
            match self.prepared.start(self.sink.clone()).await {
                Ok(inst) => self.release(Arc::new(inst)),
                Err(e) => {
                    self.free_slot();
                    tracing::warn!(function = %self.prepared.spec.name, error = %e, "could not keep a warm instance");
                    return;
                }
            }
        }
    }

    /// Refuses new work and stops idle instances; busy ones are stopped when released.
    pub async fn stop(&self) {
        let idle: Vec<_> = {
            let mut s = self.state.lock().expect("pool lock");
            s.stopped = true;
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
