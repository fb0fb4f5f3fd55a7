//! The agent's self-service tools. Each tool is the HTTP operation of the same name on
//! the agent's own webhooks (`me`), through the same service functions, so results and
//! errors are the same either way: a tool's result is the HTTP response body, and its
//! error is the HTTP error body's `error` (`code`, `message`, and `field` where one is at
//! fault).
//!
//! A tool is a [`Tool`] value: its name and arguments are parsed once, by [`Tool::parse`],
//! and [`Tool::specs`] describes every tool (name, description for a model, JSON Schema of
//! its arguments, whether it only reads) for whoever lists them: the socket's `call`
//! frames use the first, an MCP server the second.
//!
//! The agent is always `me`: a tool has no way to name another agent, and a webhook or
//! delivery of anyone else is `not_found`, exactly as over HTTP.

use serde::Serialize;
use serde_json::{json, Value};

use super::{
    input::{self, Object},
    replay, webhooks, Caller,
};
use crate::{
    error::{ApiError, ErrorDetail},
    state::Hub,
};

/// One call of a tool, with its arguments read.
#[derive(Debug, Clone, PartialEq)]
pub enum Tool {
    CreateWebhook(webhooks::NewWebhook),
    ListWebhooks,
    GetWebhook {
        webhook_id: String,
    },
    RotateWebhookSecret {
        webhook_id: String,
    },
    /// `secret` is checked only once the webhook is found, as over HTTP, so that a webhook
    /// of someone else is `not_found` whatever the secret.
    SetProviderSecret {
        webhook_id: String,
        body: Object,
    },
    DeleteWebhook {
        webhook_id: String,
    },
    ListDeliveries {
        webhook_id: String,
        query: webhooks::ActivityQuery,
    },
    Redeliver {
        webhook_id: String,
        delivery_id: String,
    },
    /// The filter is read once the webhook is found, as over HTTP.
    RedeliverDeliveries {
        webhook_id: String,
        body: Object,
    },
    DiscardDelivery {
        webhook_id: String,
        delivery_id: String,
    },
}

/// What a tool is, for a list of tools.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
    /// Changes nothing.
    pub read_only: bool,
    /// May undo something (a webhook deactivated, a secret replaced).
    pub destructive: bool,
    /// Calling it twice with the same arguments does what calling it once does.
    pub idempotent: bool,
}

/// Every tool's name, in the order [`Tool::specs`] lists them.
pub const TOOL_NAMES: [&str; 10] = [
    "create_webhook",
    "list_webhooks",
    "get_webhook",
    "rotate_webhook_secret",
    "set_provider_secret",
    "delete_webhook",
    "list_deliveries",
    "redeliver",
    "redeliver_deliveries",
    "discard_delivery",
];

const WEBHOOK_ID: &str =
    "The webhook's id (`whk_…`), as `create_webhook` or `list_webhooks` gave it.";

fn webhook_only() -> Value {
    json!({
        "type": "object",
        "properties": {"webhookId": {"type": "string", "description": WEBHOOK_ID}},
        "required": ["webhookId"],
    })
}

impl Tool {
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateWebhook(_) => "create_webhook",
            Self::ListWebhooks => "list_webhooks",
            Self::GetWebhook { .. } => "get_webhook",
            Self::RotateWebhookSecret { .. } => "rotate_webhook_secret",
            Self::SetProviderSecret { .. } => "set_provider_secret",
            Self::DeleteWebhook { .. } => "delete_webhook",
            Self::ListDeliveries { .. } => "list_deliveries",
            Self::Redeliver { .. } => "redeliver",
            Self::RedeliverDeliveries { .. } => "redeliver_deliveries",
            Self::DiscardDelivery { .. } => "discard_delivery",
        }
    }

    /// Reads a call: the tool's name and its arguments (a JSON object, or null for none).
    /// An unknown tool is reported as such whatever its arguments.
    pub fn parse(name: &str, args: &Value) -> Result<Self, ApiError> {
        if !TOOL_NAMES.contains(&name) {
            let message = if name.is_empty() {
                format!("`tool` is required; tools are: {}", TOOL_NAMES.join(", "))
            } else {
                format!(
                    "unknown tool `{name}`; tools are: {}",
                    TOOL_NAMES.join(", ")
                )
            };
            return Err(ApiError::invalid("tool", message));
        }
        let args = input::args_object(args)?;
        let webhook_id = || id_arg(&args, "webhookId");
        Ok(match name {
            "create_webhook" => Self::CreateWebhook(webhooks::NewWebhook::from_object(&args)?),
            "list_webhooks" => Self::ListWebhooks,
            "get_webhook" => Self::GetWebhook {
                webhook_id: webhook_id()?,
            },
            "rotate_webhook_secret" => Self::RotateWebhookSecret {
                webhook_id: webhook_id()?,
            },
            "set_provider_secret" => Self::SetProviderSecret {
                webhook_id: webhook_id()?,
                body: args,
            },
            "delete_webhook" => Self::DeleteWebhook {
                webhook_id: webhook_id()?,
            },
            "list_deliveries" => Self::ListDeliveries {
                webhook_id: webhook_id()?,
                query: webhooks::ActivityQuery {
                    limit: query_arg(&args, "limit")?,
                    before: query_arg(&args, "before")?,
                    status: query_arg(&args, "status")?,
                    event: query_arg(&args, "event")?,
                    since: query_arg(&args, "since")?,
                    until: query_arg(&args, "until")?,
                    q: query_arg(&args, "q")?,
                },
            },
            "redeliver_deliveries" => Self::RedeliverDeliveries {
                webhook_id: webhook_id()?,
                body: args,
            },
            "discard_delivery" => Self::DiscardDelivery {
                webhook_id: webhook_id()?,
                delivery_id: id_arg(&args, "deliveryId")?,
            },
            _ => Self::Redeliver {
                webhook_id: webhook_id()?,
                delivery_id: id_arg(&args, "deliveryId")?,
            },
        })
    }

    /// Every tool, described for a model.
    pub fn specs() -> Vec<ToolSpec> {
        let spec =
            |name, description, input_schema, (read_only, destructive, idempotent)| ToolSpec {
                name,
                description,
                input_schema,
                read_only,
                destructive,
                idempotent,
            };
        vec![
            spec(
                "create_webhook",
                "Create a webhook for this agent. Returns its `url`, to give to the sender (GitHub, Stripe, Slack or any Standard Webhooks sender), and its `signingSecret`, shown only this once. Events sent to the URL are delivered to this agent in order, and kept while it is offline.",
                json!({
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": crate::domain::MAX_NAME, "description": "A name for people, 1 to 200 characters."},
                        "provider": {"type": "string", "enum": ["generic", "github", "stripe", "slack"], "default": "generic", "description": "Who sends to it, which decides how its requests are verified."},
                    },
                    "required": ["name"],
                }),
                (false, false, false),
            ),
            spec(
                "list_webhooks",
                "List this agent's webhooks, active and deactivated.",
                json!({"type": "object", "properties": {}}),
                (true, false, true),
            ),
            spec(
                "get_webhook",
                "Get one of this agent's webhooks.",
                webhook_only(),
                (true, false, true),
            ),
            spec(
                "rotate_webhook_secret",
                "Replace a webhook's signing secret. Returns the new one, shown only this once; the old one still verifies for the rotation overlap (24 hours unless the hub is told otherwise), so that nothing signed meanwhile is lost.",
                webhook_only(),
                (false, true, false),
            ),
            spec(
                "set_provider_secret",
                "Set the secret that Stripe or Slack issued for a stripe or slack webhook, so that its requests are verified. Until it is set they are delivered marked unverified.",
                json!({
                    "type": "object",
                    "properties": {
                        "webhookId": {"type": "string", "description": WEBHOOK_ID},
                        "secret": {"type": "string", "minLength": 1, "maxLength": webhooks::MAX_PROVIDER_SECRET, "description": "Stripe's `whsec_…` endpoint secret, or Slack's signing secret."},
                    },
                    "required": ["webhookId", "secret"],
                }),
                (false, true, true),
            ),
            spec(
                "delete_webhook",
                "Deactivate a webhook: its URL stops taking events (404); its history stays readable.",
                webhook_only(),
                (false, true, true),
            ),
            spec(
                "list_deliveries",
                "List a webhook's activity, newest first: every request it received, delivered, waiting, failed, rejected or duplicate.",
                json!({
                    "type": "object",
                    "properties": {
                        "webhookId": {"type": "string", "description": WEBHOOK_ID},
                        "limit": {"type": ["integer", "string"], "description": "At most this many, 1 to 500 (default 50)."},
                        "before": {"type": "string", "description": "The `nextCursor` of the previous page."},
                        "status": {"type": "string", "enum": ["queued", "sent", "acked", "rejected", "duplicate", "expired", "failed"], "description": "Only deliveries with this status."},
                        "event": {"type": "string", "description": "Only deliveries of this event type."},
                        "since": {"type": "string", "format": "date-time", "description": "Only deliveries received at or after this time (RFC 3339)."},
                        "until": {"type": "string", "format": "date-time", "description": "Only deliveries received before this time (RFC 3339)."},
                        "q": {"type": "string", "description": "Only the delivery with this id (`dlv_…`) or this provider's delivery id."},
                    },
                    "required": ["webhookId"],
                }),
                (true, false, true),
            ),
            spec(
                "redeliver",
                "Queue a delivery again, at the end of this agent's queue.",
                json!({
                    "type": "object",
                    "properties": {
                        "webhookId": {"type": "string", "description": WEBHOOK_ID},
                        "deliveryId": {"type": "string", "description": "The delivery's id (`dlv_…`)."},
                    },
                    "required": ["webhookId", "deliveryId"],
                }),
                (false, false, false),
            ),
            spec(
                "redeliver_deliveries",
                "Queue again, in the order they were received, every delivery of a webhook that matches a filter: by default the failed ones. All of them are queued or, if that would pass this agent's backlog cap, none (`backlog_full`). With `dryRun` nothing changes and the result says how many match (`matched`); otherwise it says how many were queued (`requeued`).",
                json!({
                    "type": "object",
                    "properties": {
                        "webhookId": {"type": "string", "description": WEBHOOK_ID},
                        "status": {"type": "array", "items": {"type": "string", "enum": ["failed", "acked", "expired"]}, "minItems": 1, "default": ["failed"], "description": "Which deliveries, by status."},
                        "event": {"type": "string", "description": "Only this event type."},
                        "since": {"type": "string", "format": "date-time", "description": "Only deliveries received at or after this time (RFC 3339)."},
                        "until": {"type": "string", "format": "date-time", "description": "Only deliveries received before this time (RFC 3339)."},
                        "dryRun": {"type": "boolean", "default": false, "description": "Only count them."},
                    },
                    "required": ["webhookId"],
                }),
                (false, false, false),
            ),
            spec(
                "discard_delivery",
                "Give up on a delivery this agent cannot handle: it becomes `failed` (\"discarded\"), is not handed out again and holds up nothing behind it. It stays in the activity, and `redeliver` brings it back.",
                json!({
                    "type": "object",
                    "properties": {
                        "webhookId": {"type": "string", "description": WEBHOOK_ID},
                        "deliveryId": {"type": "string", "description": "The delivery's id (`dlv_…`)."},
                    },
                    "required": ["webhookId", "deliveryId"],
                }),
                (false, true, true),
            ),
        ]
    }

    /// Runs the tool as `caller`, whose agent is `me`.
    pub async fn run(self, hub: &Hub, caller: &Caller) -> Result<Value, ApiError> {
        match self {
            Self::CreateWebhook(new) => to_value(webhooks::create(hub, caller, "me", new).await?),
            Self::ListWebhooks => {
                Ok(json!({ "webhooks": webhooks::list(hub, caller, "me").await? }))
            }
            Self::GetWebhook { webhook_id } => {
                to_value(webhooks::get(hub, caller, "me", &webhook_id).await?)
            }
            Self::RotateWebhookSecret { webhook_id } => {
                to_value(webhooks::rotate(hub, caller, "me", &webhook_id).await?)
            }
            Self::SetProviderSecret { webhook_id, body } => {
                webhooks::set_provider_secret(hub, caller, "me", &webhook_id, &body).await?;
                // HTTP answers 204 with no body; the tool's result is the empty object.
                Ok(json!({}))
            }
            Self::DeleteWebhook { webhook_id } => {
                to_value(webhooks::deactivate(hub, caller, "me", &webhook_id).await?)
            }
            Self::ListDeliveries { webhook_id, query } => {
                to_value(webhooks::list_deliveries(hub, caller, "me", &webhook_id, &query).await?)
            }
            Self::Redeliver {
                webhook_id,
                delivery_id,
            } => {
                let id = webhooks::redeliver(hub, caller, "me", &webhook_id, &delivery_id).await?;
                Ok(json!({ "deliveryId": id, "status": "queued" }))
            }
            Self::RedeliverDeliveries { webhook_id, body } => {
                Ok(
                    match replay::redeliver_matching(hub, caller, "me", &webhook_id, &body).await? {
                        replay::Redelivered::Matched(n) => json!({ "matched": n }),
                        replay::Redelivered::Requeued(n) => json!({ "requeued": n }),
                    },
                )
            }
            Self::DiscardDelivery {
                webhook_id,
                delivery_id,
            } => {
                let id = replay::discard(hub, caller, "me", &webhook_id, &delivery_id).await?;
                Ok(json!({ "deliveryId": id, "status": "failed", "reason": "discarded" }))
            }
        }
    }
}

/// Parses and runs a call: the tool's result, or the error a `result` frame carries.
pub async fn call(
    hub: &Hub,
    caller: &Caller,
    tool: &str,
    args: Value,
) -> Result<Value, ErrorDetail> {
    let outcome = match Tool::parse(tool, &args) {
        Ok(parsed) => parsed.run(hub, caller).await,
        Err(e) => Err(e),
    };
    outcome.map_err(|e| error_detail(tool, &e))
}

/// The error a caller of a tool sees; an internal error's cause goes to the log only.
pub fn error_detail(tool: &str, e: &ApiError) -> ErrorDetail {
    if let ApiError::Internal(cause) = e {
        tracing::error!(tool, error = %cause, "tool call failed");
    }
    e.body().error
}

fn to_value(v: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// An id argument. It is checked only for being a string: the service answers any id that
/// is malformed, unknown or someone else's with `not_found`, as HTTP does for the path.
fn id_arg(args: &Object, field: &'static str) -> Result<String, ApiError> {
    match args.get(field) {
        None | Some(Value::Null) => Err(ApiError::invalid(field, format!("`{field}` is required"))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("`{field}` must be a string"),
        )),
    }
}

/// A query parameter of the activity list. HTTP has only text; a JSON number is the
/// same value written without quotes, so `"limit": 10` and `"limit": "10"` agree.
fn query_arg(args: &Object, field: &'static str) -> Result<Option<String>, ApiError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("`{field}` must be a string or a number"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value of a schema's type, for building arguments from the schema alone.
    fn sample(schema: &Value) -> Value {
        if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        match &schema["type"] {
            Value::String(t) if t == "string" => json!("whk_01J0000000000000000000000"),
            Value::Array(types) if types.contains(&json!("integer")) => json!(10),
            Value::String(t) if t == "array" => json!([sample(&schema["items"])]),
            Value::String(t) if t == "boolean" => json!(false),
            other => panic!("no sample for type {other}"),
        }
    }

    #[test]
    fn every_tool_is_described_once_in_the_order_of_its_names() {
        let names: Vec<_> = Tool::specs().iter().map(|s| s.name).collect();
        assert_eq!(names, TOOL_NAMES);
    }

    /// The schemas and the parser are written apart; this keeps them saying the same: what
    /// a schema requires is enough for the parser, and the parser refuses a call without it.
    #[test]
    fn what_a_schema_requires_is_what_the_parser_requires() {
        for spec in Tool::specs() {
            let schema = &spec.input_schema;
            assert_eq!(schema["type"], "object", "{}", spec.name);
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let props = schema["properties"].as_object().unwrap();
            let full: Object = props.iter().map(|(k, v)| (k.clone(), sample(v))).collect();
            let parsed = Tool::parse(spec.name, &Value::Object(full.clone()))
                .unwrap_or_else(|e| panic!("{}: {e:?}", spec.name));
            assert_eq!(parsed.name(), spec.name);
            for field in &required {
                let mut missing = full.clone();
                missing.remove(*field);
                // The one field checked later, by the service, once the webhook is found.
                let checked_later = spec.name == "set_provider_secret" && *field == "secret";
                match Tool::parse(spec.name, &Value::Object(missing)) {
                    Err(e) => assert_eq!(e.body().error.field, Some(*field), "{}", spec.name),
                    Ok(_) => assert!(checked_later, "{}: `{field}` not required", spec.name),
                }
            }
        }
    }

    #[test]
    fn an_unknown_or_missing_tool_names_the_tools_there_are() {
        for name in ["", "drop_table"] {
            let e = Tool::parse(name, &Value::Null).unwrap_err();
            let detail = e.body().error;
            assert_eq!(detail.field, Some("tool"));
            assert!(
                detail.message.contains("create_webhook, list_webhooks"),
                "{}",
                detail.message
            );
        }
    }

    /// The protocol page is what agent builders read: it must not fall behind the tools.
    #[test]
    fn the_protocol_page_documents_every_tool() {
        let page = include_str!("../../docs/agent-protocol.md");
        for name in TOOL_NAMES {
            assert!(
                page.contains(&format!("| `{name}` |")),
                "docs/agent-protocol.md lacks `{name}`"
            );
        }
    }

    #[test]
    fn arguments_must_be_an_object() {
        let e = Tool::parse("list_webhooks", &json!([1])).unwrap_err();
        assert_eq!(e.body().error.field, Some("args"));
    }
}
