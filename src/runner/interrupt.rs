//! Ctrl-C escalation: the first interrupt drains (no new step starts; running steps reach
//! their end), the second aborts (running steps are cancelled on their hosts).

use tokio_util::sync::CancellationToken;

/// The two stages of an interrupt, as cancellation tokens the runner watches.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    pub drain: CancellationToken,
    pub abort: CancellationToken,
}

impl Interrupt {
    /// Escalate by one stage; returns the stage reached (1 = draining, 2 = aborting).
    pub fn escalate(&self) -> u8 {
        if self.drain.is_cancelled() {
            self.abort.cancel();
            2
        } else {
            self.drain.cancel();
            1
        }
    }

    /// Listen for Ctrl-C and escalate on each one, until the returned task is aborted.
    pub fn watch_ctrl_c(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if this.escalate() == 2 {
                    break;
                }
            }
        })
    }
}
