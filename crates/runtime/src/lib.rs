//! # gust-runtime: running functions
//!
//! Owns everything between "invoke function F with this payload" and a function process
//! answering it: the [`Invoker`] (the one invoke path every trigger uses), a [`Pool`] per
//! function (warm instances, scale up to `max_instances`, a bounded wait queue, scale to zero),
//! and the process executor that starts each [`Instance`] as a child process speaking the AWS
//! Lambda Runtime API to an endpoint of its own.
//!
//! The split follows wasmtime's `InstancePre`: [`Executor::prepare`] does the per-deployment
//! work once (resolve the interpreter, check the code, build the environment), and
//! [`Prepared::start`] is the per-cold-start work. That keeps the warm path to a channel send.
//!
//! Must not depend on: the store, the gateway, HTTP routing. Callers push deployments in and
//! get [`InvokeOutput`] or a typed [`InvokeError`] (with [`Blame`]) out.

mod api;
mod bootstrap;
mod crashloop;
mod credentials;
mod error;
mod executor;
mod instance;
mod invoker;
mod logs;
mod orphans;
mod output;
mod pool;
mod reconcile;
mod resident;
pub mod sandbox;
mod spares;
mod telemetry;

pub use bootstrap::RuntimeFiles;
pub use crashloop::{BackOff, CrashLoopPolicy, BACKOFF_ERROR_TYPE};
pub use credentials::{AwsSessionKey, FunctionCredentials};
pub use error::{Blame, InvokeError, PrepareError};
pub use executor::{Executor, ExecutorConfig, Prepared, DEFAULT_RESIDENT_CODE_BYTES};
pub use instance::{kill_process_group, supervise, Instance, InstanceId};
pub use invoker::{DeployedFunction, Invocation, InvokeOutput, Invoker, PlatformApi, Redeployed, Trigger};
pub use logs::{LogLine, LogSink, Stream, Tail, TracingLogSink, TAIL_BYTES};
pub use orphans::{OrphanGuard, WATCHDOG_NAME};
pub use pool::{Pool, PoolStats};
pub use telemetry::{names as metric_names, Metrics, NoTelemetry, Telemetry};
