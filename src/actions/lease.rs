//! Leases on actions as the engine holds them: a random owner id per process, the fencing token
//! of its claim, and a heartbeat that renews the lease while a step runs.
//!
//! Liveness is the lease alone: no host names, pids or `/proc`. A process that stops renewing
//! (crashed, hung, cut off from the store) loses its actions once the lease runs out, and the
//! store refuses its late writes by their old fencing token.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;

use crate::store::{ActionRecord, Store, StoreError};

/// This process's owner id for leases: random, drawn once per process.
pub fn process_owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| format!("keywarden-{}", uuid::Uuid::new_v4()))
}

/// A lease held on one action: who holds it, under which fencing token, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub action: i64,
    pub owner: String,
    pub token: i64,
    pub until: DateTime<Utc>,
}

impl Lease {
    /// The lease `owner` holds on an action as the store returned it, if it holds one.
    pub fn held_by(record: &ActionRecord, owner: &str) -> Option<Self> {
        (record.lease_owner.as_deref() == Some(owner)).then(|| Self {
            action: record.id,
            owner: owner.to_owned(),
            token: record.lease_token,
            until: record.lease_until.unwrap_or(DateTime::<Utc>::MIN_UTC),
        })
    }
}

/// The lease was taken over, or could not be renewed before it ran out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("lost the lease of action {action}: {reason}")]
pub struct LeaseLost {
    pub action: i64,
    pub reason: String,
}

/// How often to renew a lease of this length: three times per lease, so one or two missed beats
/// (a busy store) do not lose it.
pub fn heartbeat_every(lease: TimeDelta) -> Duration {
    (lease / 3)
        .to_std()
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(100))
}

/// Renews the lease every `every` until it is lost, and says why. A passing store failure is
/// tried again at the next beat; the lease is lost when it is taken over (or the action
/// finished), or when it runs out before a renewal succeeds.
async fn renew_until_lost(
    store: &dyn Store,
    lease: &Lease,
    every: Duration,
    clock: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
) -> LeaseLost {
    let mut until = lease.until;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await; // The first tick is at once; the claim has just renewed it.
    loop {
        ticker.tick().await;
        let now = clock();
        match store
            .renew_lease(lease.action, &lease.owner, lease.token, now)
            .await
        {
            Ok(end) => until = end,
            Err(StoreError::Unavailable(message)) if now < until => {
                tracing::warn!(action = lease.action, %message, "Cannot renew the lease now; trying again at the next beat.");
            }
            Err(err) => {
                let reason = if now >= until {
                    format!("it ran out at {until} before it could be renewed ({err})")
                } else {
                    err.to_string()
                };
                return LeaseLost {
                    action: lease.action,
                    reason,
                };
            }
        }
    }
}

/// Runs `work` while renewing `lease` every `every`. If the lease is lost first, `work` is
/// dropped where it stands (as a crash would stop it: every step is safe to stop at any point)
/// and the loss is returned.
pub async fn while_held<F: Future>(
    store: &dyn Store,
    lease: &Lease,
    every: Duration,
    clock: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
    work: F,
) -> Result<F::Output, LeaseLost> {
    tokio::select! {
        biased;
        out = work => Ok(out),
        lost = renew_until_lost(store, lease, every, clock) => Err(lost),
    }
}

/// A heartbeat in its own task: renews a lease every `every` until dropped. If the lease is
/// lost, the task stops and [`Heartbeat::lost`] (or [`Heartbeat::watch`]) says why.
#[derive(Debug)]
pub struct Heartbeat {
    lost: watch::Receiver<Option<LeaseLost>>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Starts renewing `lease`; needs a tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        lease: Lease,
        every: Duration,
        clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    ) -> Self {
        let (sender, lost) = watch::channel(None);
        let task = tokio::spawn(async move {
            let why = renew_until_lost(store.as_ref(), &lease, every, clock.as_ref()).await;
            tracing::warn!(action = why.action, reason = %why.reason, "Lost an action's lease.");
            // Nobody may be watching any more; that is fine.
            let _ = sender.send(Some(why));
        });
        Self { lost, task }
    }

    /// Why the lease was lost, if it was.
    pub fn lost(&self) -> Option<LeaseLost> {
        self.lost.borrow().clone()
    }

    /// A receiver that changes once, when the lease is lost.
    pub fn watch(&self) -> watch::Receiver<Option<LeaseLost>> {
        self.lost.clone()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
