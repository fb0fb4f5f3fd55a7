//! The webhooks ingest looks up, kept in memory so that a post does not cost a database
//! read before its write.
//!
//! Every change that matters to ingest (deactivate, rotate, provider secret) goes through
//! the service layer of this process, which invalidates the entry after the change is
//! committed. A load that began before an invalidation is not cached (a generation counter
//! tells), so a stale entry cannot outlive the change. Entries also expire after a minute,
//! as a backstop for changes made outside this process.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::{
    domain::ids::WebhookId,
    store::{IngestWebhook, Store},
};

const TTL: Duration = Duration::from_secs(60);
/// Past this many entries the cache starts over, so memory stays bounded.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct WebhookCache {
    entries: Mutex<HashMap<WebhookId, (Arc<IngestWebhook>, Instant)>>,
    /// Bumped by every invalidation.
    generation: AtomicU64,
}

impl WebhookCache {
    /// The active webhook `id`, from memory when it can be.
    pub async fn active(
        &self,
        store: &Store,
        id: &WebhookId,
    ) -> Result<Option<Arc<IngestWebhook>>, crate::store::StoreError> {
        if let Some(hit) = self.fresh(id) {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(loaded) = store.active_webhook_for_ingest(id).await? else {
            return Ok(None);
        };
        let loaded = Arc::new(loaded);
        if let Ok(mut entries) = self.entries.lock() {
            if self.generation.load(Ordering::Acquire) == generation {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(id.clone(), (loaded.clone(), Instant::now()));
            }
        }
        Ok(Some(loaded))
    }

    fn fresh(&self, id: &WebhookId) -> Option<Arc<IngestWebhook>> {
        let entries = self.entries.lock().ok()?;
        let (webhook, loaded_at) = entries.get(id)?;
        (loaded_at.elapsed() < TTL).then(|| webhook.clone())
    }

    /// Call after a change to the webhook is committed.
    pub fn invalidate(&self, id: &WebhookId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }
}
