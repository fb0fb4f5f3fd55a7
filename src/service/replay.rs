//! The way out for events that fail: discarding one (it becomes `failed`, "discarded",
//! and blocks nothing) and redelivering many at once by filter, in their original order.
//! The same rules as the rest: ownership first, and 404 for anything not the caller's.

use serde_json::Value;

use super::{
    input::Object,
    resolve_agent, resolve_webhook,
    webhooks::{filter_text, filter_time, parse_webhook_id},
    Hub,
};
use crate::{
    domain::{
        ids::DeliveryId, BulkRequeueOutcome, DeliveryStatus, DiscardOutcome, RedeliverFilter,
    },
    error::ApiError,
    service::Caller,
};

/// What a redeliver by filter may take: deliveries that are done, one way or another.
/// Pending ones are on their way already; rejected and duplicate ones were never for the
/// agent.
pub const REDELIVERABLE: [DeliveryStatus; 3] = [
    DeliveryStatus::Failed,
    DeliveryStatus::Acked,
    DeliveryStatus::Expired,
];

/// What a redeliver by filter answers: `{matched}` on a dry run, else `{requeued}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivered {
    Matched(u64),
    Requeued(u64),
}

/// Gives up on a delivery: `failed` with the reason "discarded", never handed out again
/// unless it is redelivered. Idempotent; an acked or expired delivery is a conflict (there
/// is nothing left to give up on).
pub async fn discard(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    delivery_ref: &str,
) -> Result<DeliveryId, ApiError> {
    let owner = resolve_agent(hub, caller, agent_ref).await?;
    let webhook_id = parse_webhook_id(webhook_ref)?;
    let id = DeliveryId::parse(delivery_ref).ok_or(ApiError::NotFound)?;
    match hub.writer.discard(owner, webhook_id, id.clone()).await? {
        DiscardOutcome::Failed => {
            tracing::info!(delivery_id = %id, "delivery discarded");
            Ok(id)
        }
        DiscardOutcome::NotFound => Err(ApiError::NotFound),
        DiscardOutcome::Finished(status) => Err(ApiError::Conflict(format!(
            "the delivery is {}: there is nothing to discard",
            status.as_str()
        ))),
    }
}

/// Reads a redeliver-by-filter request: `status` (a list, default `["failed"]`),
/// `event`, `since`, `until` (RFC 3339), `dryRun`.
pub fn read_filter(body: &Object) -> Result<(RedeliverFilter, bool), ApiError> {
    let statuses = match body.get("status") {
        None | Some(Value::Null) => vec![DeliveryStatus::Failed],
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut statuses = Vec::with_capacity(items.len());
            for item in items {
                let status = item
                    .as_str()
                    .and_then(DeliveryStatus::parse)
                    .filter(|s| REDELIVERABLE.contains(s))
                    .ok_or_else(status_error)?;
                if !statuses.contains(&status) {
                    statuses.push(status);
                }
            }
            statuses
        }
        Some(_) => return Err(status_error()),
    };
    let text = |field: &'static str| match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("`{field}` must be a string"),
        )),
    };
    let filter = RedeliverFilter {
        statuses,
        event: filter_text(text("event")?, "event")?,
        since: filter_time(text("since")?, "since")?,
        until: filter_time(text("until")?, "until")?,
    };
    let dry_run = match body.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid(
                "dryRun",
                "`dryRun` must be true or false",
            ))
        }
    };
    Ok((filter, dry_run))
}

fn status_error() -> ApiError {
    ApiError::invalid(
        "status",
        "`status` must be a non-empty list of failed, acked, expired",
    )
}

/// Queues again, at the end of the agent's queue and in their original order, every
/// delivery of the webhook that the filter takes; all of them or, past the backlog cap,
/// none (503 `backlog_full`). A dry run only counts them.
pub async fn redeliver_matching(
    hub: &Hub,
    caller: &Caller,
    agent_ref: &str,
    webhook_ref: &str,
    body: &Object,
) -> Result<Redelivered, ApiError> {
    let (owner, webhook) = resolve_webhook(hub, caller, agent_ref, webhook_ref).await?;
    let webhook_id = webhook.id;
    let (filter, dry_run) = read_filter(body)?;
    match hub
        .writer
        .requeue_matching(owner, webhook_id.clone(), filter, dry_run)
        .await?
    {
        BulkRequeueOutcome::Matched(n) => Ok(Redelivered::Matched(n)),
        BulkRequeueOutcome::Requeued(n) => {
            tracing::info!(webhook_id = %webhook_id, requeued = n, "deliveries redelivered by filter");
            Ok(Redelivered::Requeued(n))
        }
        BulkRequeueOutcome::BacklogFull(n) => {
            tracing::info!(webhook_id = %webhook_id, matched = n, "redeliver by filter refused: the backlog cap");
            Err(ApiError::backlog_full())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(v: Value) -> Result<(RedeliverFilter, bool), ApiError> {
        read_filter(v.as_object().unwrap())
    }

    #[test]
    fn a_filter_defaults_to_the_failed_ones_and_checks_every_field() {
        let (filter, dry) = read(json!({})).unwrap();
        assert_eq!(filter.statuses, [DeliveryStatus::Failed]);
        assert!(!dry);
        let (filter, dry) = read(json!({
            "status": ["acked", "failed", "acked"], "event": "push",
            "since": "2026-07-01T12:00:00Z", "until": "2026-07-01T13:00:00.500Z", "dryRun": true
        }))
        .unwrap();
        assert_eq!(
            filter.statuses,
            [DeliveryStatus::Acked, DeliveryStatus::Failed]
        );
        assert_eq!(filter.event.as_deref(), Some("push"));
        assert_eq!(filter.since, Some(1_782_907_200_000));
        assert_eq!(filter.until, Some(1_782_910_800_500));
        assert!(dry);
        for (body, field) in [
            (json!({"status": "failed"}), "status"),
            (json!({"status": []}), "status"),
            (json!({"status": ["queued"]}), "status"),
            (json!({"status": ["rejected"]}), "status"),
            (json!({"event": 3}), "event"),
            (json!({"since": "last week"}), "since"),
            (json!({"until": 1}), "until"),
            (json!({"dryRun": "yes"}), "dryRun"),
        ] {
            let e = read(body.clone()).unwrap_err();
            assert_eq!(e.body().error.field, Some(field), "{body}");
        }
    }
}
