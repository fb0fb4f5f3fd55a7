//! Webhooks and their activity: every operation takes the caller and the agent named in
//! the path, and resolves ownership before it validates anything else (authorize first).

use super::{
    input::{self, Object},
    resolve_agent, resolve_webhook,
    views::{
        webhook_url, AttemptView, CreatedWebhook, Deactivated, DeliveryDetail, DeliveryPage,
        DeliveryView, RotatedSecret, WebhookView,
    },
    Hub,
};
use crate::{
    clock, crypto,
    domain::{
        self,
        ids::{DeliveryId, WebhookId},
        DeliveryStatus, Provider, RequeueOutcome,
    },
    error::ApiError,
    service::Caller,
    store::{ActivityFilter, DeliveryRecord},
};

/// Provider secrets are short strings (`whsec_…`, Slack's hex); this is generous.
pub const MAX_PROVIDER_SECRET: usize = 1024;
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;

pub(super) fn parse_webhook_id(s: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(s).ok_or(ApiError::NotFound)
}

/// What a new webhook is made of: `name` and `provider` (default `generic`), the same
/// from an HTTP body and from a tool's arguments.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct NewWebhook {
    /// 1 to 200 characters, surrounding whitespace trimmed.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// `generic` when left out.
    #[schema(required = false)]
    pub provider: Provider,
}

impl NewWebhook {
    pub fn from_object(body: &Object) -> Result<Self, ApiError> {
        let name = input::required_str(body, "name", domain::MAX_NAME)?;
        let provider = match input::optional_str(body, "provider", 32)? {
            None => Provider::Generic,
            Some(p) => Provider::parse(&p).ok_or_else(|| {
                ApiError::invalid(
                    "provider",
                    "`provider` must be one of generic, github, stripe, slack",
                )
            })?,
        };
        Ok(Self { name, provider })
    }
}

/// Creates a webhook for the agent named by `agent_ref`. Callers resolve the agent before
/// they read `new` from their input, so that a stranger learns nothing from validation.
pub async fn create(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    new: NewWebhook,
) -> Result<CreatedWebhook, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    super::agents::require_active(&owner)?;
    let NewWebhook { name, provider } = new;
    let id = WebhookId::generate();
    let secret = crypto::new_signing_secret()?;
    let sealed = hub.key.seal(secret.expose(), &crypto::signing_aad(&id))?;
    let w = hub
        .store
        .insert_webhook(
            &owner,
            &id,
            &name,
            provider,
            caller.created_by(),
            &sealed,
            clock::now_ms(),
        )
        .await?;
    tracing::info!(webhook_id = %w.id, agent_id = %w.agent_id, provider = %provider, created_by = caller.created_by(), "webhook created");
    Ok(CreatedWebhook {
        url: webhook_url(&hub.public_url, w.id.as_str()),
        webhook_id: w.id.to_string(),
        signing_secret: secret.expose().to_owned(),
        name: w.name,
        provider: w.provider.as_str(),
        active: w.active,
        created_at: clock::rfc3339(w.created_at),
    })
}

pub async fn list(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
) -> Result<Vec<WebhookView>, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let webhooks = hub.store.list_webhooks(&owner).await?;
    Ok(webhooks
        .iter()
        .map(|w| WebhookView::new(w, &hub.public_url))
        .collect())
}

pub async fn get(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
) -> Result<WebhookView, ApiError> {
    let (_, w) = resolve_webhook(hub, caller, agent_ref, webhook_ref).await?;
    Ok(WebhookView::new(&w, &hub.public_url))
}

pub async fn rotate(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
) -> Result<RotatedSecret, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    super::agents::require_active(&owner)?;
    let id = parse_webhook_id(webhook_ref)?;
    let secret = crypto::new_signing_secret()?;
    let sealed = hub.key.seal(secret.expose(), &crypto::signing_aad(&id))?;
    let now = clock::now_ms();
    let overlap_ms = i64::try_from(hub.config.rotation_overlap.as_millis()).unwrap_or(i64::MAX);
    let found = hub
        .store
        .rotate_webhook_secret(&owner, &id, &sealed, now.saturating_add(overlap_ms), now)
        .await?;
    if !found {
        return Err(ApiError::NotFound);
    }
    hub.webhooks.invalidate(&id);
    tracing::info!(webhook_id = %id, "signing secret rotated");
    Ok(RotatedSecret {
        webhook_id: id.to_string(),
        signing_secret: secret.expose().to_owned(),
    })
}

pub async fn rename(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    body: &Object,
) -> Result<WebhookView, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let id = parse_webhook_id(webhook_ref)?;
    let name = input::required_str(body, "name", domain::MAX_NAME)?;
    let w = hub
        .store
        .rename_webhook(&owner, &id, &name, clock::now_ms())
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(webhook_id = %id, "webhook renamed");
    Ok(WebhookView::new(&w, &hub.public_url))
}

/// The secret Stripe or Slack issued for a webhook, which its requests are verified with.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct ProviderSecret {
    /// Stripe's `whsec_…`, or Slack's signing secret.
    #[schema(min_length = 1, max_length = 1024)]
    pub secret: String,
}

impl ProviderSecret {
    pub fn from_object(body: &Object) -> Result<Self, ApiError> {
        Ok(Self {
            secret: input::required_str(body, "secret", MAX_PROVIDER_SECRET)?,
        })
    }
}

pub async fn set_provider_secret(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    body: &Object,
) -> Result<(), ApiError> {
    let (owner, webhook) = resolve_webhook(hub, caller, agent_ref, webhook_ref).await?;
    let id = webhook.id.clone();
    super::agents::require_active(&owner)?;
    let ProviderSecret { secret } = ProviderSecret::from_object(body)?;
    if !webhook.provider.uses_provider_secret() {
        return Err(ApiError::invalid(
            "secret",
            format!(
                "a {} webhook is verified with its signing secret; provider secrets are for stripe and slack",
                webhook.provider
            ),
        ));
    }
    let sealed = hub.key.seal(&secret, &crypto::provider_aad(&id))?;
    if !hub
        .store
        .set_provider_secret(&owner, &id, &sealed, clock::now_ms())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    hub.webhooks.invalidate(&id);
    tracing::info!(webhook_id = %id, "provider secret set");
    Ok(())
}

pub async fn deactivate(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
) -> Result<Deactivated, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let id = parse_webhook_id(webhook_ref)?;
    if !hub
        .store
        .deactivate_webhook(&owner, &id, clock::now_ms())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    hub.webhooks.invalidate(&id);
    tracing::info!(webhook_id = %id, "webhook deactivated");
    Ok(Deactivated {
        webhook_id: id.to_string(),
        active: false,
    })
}

/// Query of the activity list: `limit`, `before` (a cursor), and filters: `status`,
/// `event`, `since` and `until` (RFC 3339 receipt times), `q` (a delivery id or the
/// provider's own delivery id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityQuery {
    pub limit: Option<String>,
    pub before: Option<String>,
    pub status: Option<String>,
    pub event: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
}

/// The longest event type or id a filter takes; longer ones match nothing anyway.
const MAX_FILTER_TEXT: usize = 512;

/// A filter's text value: absent or empty is no filter.
pub(super) fn filter_text(
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<String>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(s) if s.chars().count() > MAX_FILTER_TEXT => Err(ApiError::invalid(
            field,
            format!("`{field}` is longer than {MAX_FILTER_TEXT} characters"),
        )),
        Some(s) => Ok(Some(s.to_owned())),
    }
}

/// A filter's time: RFC 3339, as the API writes times.
pub(super) fn filter_time(
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<i64>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(s) => clock::parse_rfc3339(s).map(Some).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("`{field}` must be an RFC 3339 time, such as 2026-07-01T12:00:00Z"),
            )
        }),
    }
}

pub async fn list_deliveries(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    query: &ActivityQuery,
) -> Result<DeliveryPage, ApiError> {
    let (owner, webhook) = resolve_webhook(hub, caller, agent_ref, webhook_ref).await?;
    let id = webhook.id;
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("`limit` must be 1 to {MAX_PAGE}"))
            })?,
    };
    let before = match query.before.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            DeliveryId::parse(s)
                .ok_or_else(|| ApiError::invalid("before", "`before` must be a nextCursor"))?,
        ),
    };
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(
                "status",
                "`status` must be one of queued, sent, acked, rejected, duplicate, expired, failed",
            )
        })?),
    };
    let filter = ActivityFilter {
        status,
        event: filter_text(query.event.as_deref(), "event")?,
        since: filter_time(query.since.as_deref(), "since")?,
        until: filter_time(query.until.as_deref(), "until")?,
        id: filter_text(query.q.as_deref(), "q")?,
    };
    // One more than asked tells whether there is a next page.
    let mut records = hub
        .store
        .list_deliveries(&owner, &id, &filter, before.as_ref(), limit + 1)
        .await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let next_cursor = if more {
        records.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(DeliveryPage {
        deliveries: records.iter().map(DeliveryView::new).collect(),
        next_cursor,
    })
}

pub async fn get_delivery(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    delivery_ref: &str,
) -> Result<DeliveryDetail, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let webhook_id = parse_webhook_id(webhook_ref)?;
    let id = DeliveryId::parse(delivery_ref).ok_or(ApiError::NotFound)?;
    let DeliveryRecord {
        record,
        headers,
        body,
        history,
    } = hub
        .store
        .get_delivery(&owner, &webhook_id, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let headers = serde_json::value::RawValue::from_string(headers).map_err(ApiError::internal)?;
    let body_truncated = (body.len() as i64) < record.size_bytes;
    let (body, body_encoding) = crate::protocol::encode_body(&body);
    Ok(DeliveryDetail {
        record: DeliveryView::new(&record),
        headers,
        body: body.into_owned(),
        body_encoding,
        body_truncated,
        history: history.iter().map(AttemptView::new).collect(),
    })
}

pub async fn redeliver(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    delivery_ref: &str,
) -> Result<DeliveryId, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let webhook_id = parse_webhook_id(webhook_ref)?;
    let id = DeliveryId::parse(delivery_ref).ok_or(ApiError::NotFound)?;
    match hub.writer.requeue(owner, webhook_id, id.clone()).await? {
        RequeueOutcome::Queued => Ok(id),
        // Rejected and duplicate requests were never for the agent; they are not found
        // as deliveries to hand over again.
        RequeueOutcome::NotFound => Err(ApiError::NotFound),
        RequeueOutcome::BacklogFull => Err(ApiError::backlog_full()),
    }
}
