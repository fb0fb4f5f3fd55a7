//! A `Store` opened directly on a fresh data directory, for tests of the statements the
//! delivery writer runs, below the HTTP surface.

use std::sync::Arc;

use bytes::Bytes;
use hookhub::{
    domain::{
        ids::{AccountId, AgentId, DeliveryId, WebhookId},
        NewDelivery, Provider, SealedSecrets,
    },
    store::Store,
};
use tempfile::TempDir;

pub struct SeededStore {
    pub store: Store,
    /// Agents of one account, each with one webhook.
    pub agents: Vec<(AgentId, WebhookId)>,
    _dir: TempDir,
}

pub async fn seeded_store(agents: usize) -> SeededStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let account = AccountId::generate();
    store.insert_account(&account, "a", b"h0", 0).await.unwrap();
    let mut seeded = Vec::new();
    for i in 0..agents {
        let (agent, webhook) = (AgentId::generate(), WebhookId::generate());
        let token_hash = format!("h{}", i + 1);
        store
            .insert_agent(&agent, &account, "b", token_hash.as_bytes(), 0)
            .await
            .unwrap();
        let owned = store.owned_agent(&account, &agent).await.unwrap().unwrap();
        store
            .insert_webhook(
                &owned,
                &webhook,
                "w",
                Provider::Generic,
                "user",
                b"sealed",
                0,
            )
            .await
            .unwrap();
        seeded.push((agent, webhook));
    }
    SeededStore {
        store,
        agents: seeded,
        _dir: dir,
    }
}

/// A delivery for `agent` on `webhook`, received at `received_at` (ms since the epoch).
pub fn new_delivery(agent: &AgentId, webhook: &WebhookId, received_at: i64) -> NewDelivery {
    NewDelivery {
        id: DeliveryId::generate(),
        webhook_id: webhook.clone(),
        agent_id: agent.clone(),
        provider: Provider::Generic,
        event: None,
        provider_delivery_id: None,
        verified: true,
        received_at,
        headers: "{}".to_owned(),
        body: Bytes::from_static(b"x"),
        secrets: Arc::new(SealedSecrets {
            signing: vec![],
            previous: None,
            previous_until: None,
            provider: None,
        }),
    }
}
