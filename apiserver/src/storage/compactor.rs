//! Compaction of old revisions, shared by the replicas through a compare-and-swap turn.

use std::sync::Arc;

use crate::app::App;

impl App {
    /// Compacts old revisions every interval; replicas take turns through a compare-and-swap
    /// on `<prefix>/compact_rev_key` (kube-apiserver's scheme), so only one compacts per turn.
    pub(crate) async fn compactor(self: Arc<Self>) {
        let interval = self.config.compaction_interval;
        if interval.is_zero() {
            return;
        }
        let key = format!("{}/compact_rev_key", self.storage.prefix());
        let mut version = 0i64;
        let mut last_rev = 0i64;
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Ok(now_rev) = self.storage.current_revision().await else {
                continue;
            };
            match self
                .storage
                .swap_raw(&key, version, last_rev.to_string().as_bytes())
                .await
            {
                Ok((won, v)) => {
                    version = v;
                    // The winner of a turn compacts what the previous turn saw as current, so
                    // one interval of history always stays for watches and continue tokens.
                    if won && last_rev > 0 {
                        if let Err(e) = self.storage.compact(last_rev).await {
                            tracing::warn!(error = %e, "compaction failed");
                        } else {
                            tracing::info!(revision = last_rev, "compacted");
                        }
                    }
                    last_rev = now_rev;
                }
                Err(e) => tracing::warn!(error = %e, "compaction turn failed"),
            }
        }
    }
}
