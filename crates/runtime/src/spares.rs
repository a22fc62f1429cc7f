//! Prewarmed spares: generic Node and Python runtime processes started ahead of need, so a
//! cold start does not pay for process start (60 ms for `node`, 30 ms for `python3` here).
//!
//! A spare runs Gust's bootstrap with `GUST_PREWARM=1`: it loads its own modules and waits on
//! `/runtime/gust/specialize`. A cold start takes a spare of the right runtime, answers that
//! call with the function's handler, code directory and environment, and waits for the first
//! `/next` as with any start; a replacement spare is started in the background. `provided`
//! functions have their own binaries: when instances are sandboxed they get spares too, a
//! confined launcher with no program yet (`Spawned::exec` gives it the function's), so the
//! sandbox's setup (above all the cgroup move) is not paid on their cold start.

use crate::instance::{Identity, Spawned};
use crate::logs::LogSink;
use gust_model::RuntimeKind;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// How to start a generic process of one runtime.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub socket_dir: Option<PathBuf>,
    /// Spares are confined like instances, with no function's code until specialised.
    pub sandbox: Option<Arc<crate::sandbox::Sandbox>>,
}

/// Refills one runtime's spares when dropped ([`Spares::replenish_after`]).
pub(crate) struct Replenish {
    spares: Arc<Spares>,
    kind: Option<RuntimeKind>,
}

impl Drop for Replenish {
    fn drop(&mut self) {
        if let Some(kind) = self.kind.take() {
            if self.spares.enabled() {
                self.spares.refill(kind);
            }
        }
    }
}

pub(crate) struct Spares {
    per_kind: usize,
    sink: Arc<dyn LogSink>,
    ready: Mutex<HashMap<RuntimeKind, Vec<Spawned>>>,
    templates: Mutex<HashMap<RuntimeKind, Template>>,
    refilling: Mutex<HashSet<RuntimeKind>>,
    stopped: AtomicBool,
}

impl Spares {
    pub fn new(per_kind: usize, sink: Arc<dyn LogSink>) -> Arc<Self> {
        Arc::new(Self {
            per_kind,
            sink,
            ready: Mutex::new(HashMap::new()),
            templates: Mutex::new(HashMap::new()),
            refilling: Mutex::new(HashSet::new()),
            stopped: AtomicBool::new(false),
        })
    }

    pub fn enabled(&self) -> bool {
        self.per_kind > 0
    }

    /// Registers a runtime some deployed function uses and starts its spares.
    pub fn want(self: &Arc<Self>, kind: RuntimeKind, template: Template) {
        if !self.enabled() {
            return;
        }
        self.templates
            .lock()
            .expect("templates lock")
            .entry(kind.clone())
            .or_insert(template);
        self.refill(kind);
    }

    /// A live spare of `kind`, if one is ready. The caller replenishes ([`Spares::replenish_after`]).
    pub fn take(self: &Arc<Self>, kind: RuntimeKind) -> Option<Spawned> {
        if !self.enabled() {
            return None;
        }
        let spare = {
            let mut ready = self.ready.lock().expect("spares lock");
            let list = ready.get_mut(&kind)?;
            let mut found = None;
            while let Some(s) = list.pop() {
                if !s.has_exited() {
                    found = Some(s);
                    break;
                }
            }
            found
        };
        spare
    }

    /// Starts the spares of `kind` that are missing when the returned guard is dropped: a
    /// cold start holds it, so that the replacement for the spare it took does not compete
    /// with it for the CPU (a sandboxed spare's setup is several milliseconds of kernel work).
    pub fn replenish_after(self: &Arc<Self>, kind: RuntimeKind) -> Replenish {
        Replenish {
            spares: self.clone(),
            kind: Some(kind),
        }
    }

    pub fn ready_total(&self) -> usize {
        self.ready.lock().expect("spares lock").values().map(Vec::len).sum()
    }

    /// Process ids of the spares ready now.
    pub fn ready_pids(&self) -> Vec<i32> {
        let ready = self.ready.lock().expect("spares lock");
        ready.values().flatten().map(Spawned::pid).collect()
    }

    fn count(&self, kind: &RuntimeKind) -> usize {
        self.ready.lock().expect("spares lock").get(kind).map_or(0, Vec::len)
    }

    fn refill(self: &Arc<Self>, kind: RuntimeKind) {
        if !self.refilling.lock().expect("refill lock").insert(kind.clone()) {
            return; // a refill of this runtime is already running
        }
        let this = self.clone();
        tokio::spawn(async move {
            let template = this.templates.lock().expect("templates lock").get(&kind).cloned();
            if let Some(t) = template {
                while !this.stopped.load(Ordering::Acquire) && this.count(&kind) < this.per_kind {
                    match Spawned::spawn(
                        &t.program,
                        &t.args,
                        &t.env,
                        &t.cwd,
                        Arc::new(Identity::default()),
                        this.sink.clone(),
                        t.socket_dir.as_deref(),
                        t.sandbox.as_ref().map(|sandbox| crate::instance::Confine {
                            sandbox,
                            code: None,
                            memory_mb: None,
                            tmp_mb: gust_model::defaults::EPHEMERAL_STORAGE_MB,
                            extra_read_only: &[],
                            exec_later: kind == RuntimeKind::Provided,
                            network_none: false,
                            platform_api: None,
                        }),
                    )
                    .await
                    {
                        Ok(spare) => {
                            if this.stopped.load(Ordering::Acquire) {
                                break;
                            }
                            this.ready
                                .lock()
                                .expect("spares lock")
                                .entry(kind.clone())
                                .or_default()
                                .push(spare);
                        }
                        Err(e) => {
                            tracing::warn!(runtime = ?kind, error = %e, "could not start a prewarmed runtime");
                            break;
                        }
                    }
                }
            }
            this.refilling.lock().expect("refill lock").remove(&kind);
        });
    }

    /// Kills every spare and starts no more.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.ready.lock().expect("spares lock").clear();
    }
}
