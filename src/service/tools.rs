//! The agent's self-service tools, called over its socket as `call` frames. Each tool is
//! the HTTP operation of the same name on the agent's own webhooks (`me`), through the
//! same service functions, so results and errors are the same either way: a tool's
//! `result` is the HTTP response body, and its `error` is the HTTP error body's `error`
//! (`code`, `message`, and `field` where one is at fault).
//!
//! The agent is always `me`: a tool has no way to name another agent, and a webhook or
//! delivery of anyone else is `not_found`, exactly as over HTTP.
//!
//! Arguments are the HTTP request's path parameters and body fields, camelCase:
//!
//! | tool | args | result (the HTTP body) |
//! |---|---|---|
//! | `create_webhook` | `name`, `provider?` | the webhook with `signingSecret` |
//! | `list_webhooks` | — | `{webhooks}` |
//! | `get_webhook` | `webhookId` | the webhook |
//! | `rotate_webhook_secret` | `webhookId` | `{webhookId, signingSecret}` |
//! | `set_provider_secret` | `webhookId`, `secret` | `{}` (HTTP: 204, no body) |
//! | `delete_webhook` | `webhookId` | `{webhookId, active: false}` |
//! | `list_deliveries` | `webhookId`, `limit?`, `before?`, `status?` | `{deliveries, nextCursor}` |
//! | `redeliver` | `webhookId`, `deliveryId` | `{deliveryId, status: "queued"}` |

use serde::Serialize;
use serde_json::{json, Value};

use super::{
    input::{self, Object},
    webhooks, Hub,
};
use crate::{
    auth::Caller,
    error::{ApiError, ErrorDetail},
};

pub const TOOLS: [&str; 8] = [
    "create_webhook",
    "list_webhooks",
    "get_webhook",
    "rotate_webhook_secret",
    "set_provider_secret",
    "delete_webhook",
    "list_deliveries",
    "redeliver",
];

/// Runs a tool: its result, or the error a `result` frame carries.
pub async fn call(
    hub: &Hub,
    caller: &Caller,
    tool: &str,
    args: Value,
) -> Result<Value, ErrorDetail> {
    run(hub, caller, tool, args).await.map_err(|e| {
        if let ApiError::Internal(cause) = &e {
            tracing::error!(tool, error = %cause, "tool call failed");
        }
        e.body().error
    })
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

async fn run(hub: &Hub, caller: &Caller, tool: &str, args: Value) -> Result<Value, ApiError> {
    // Read when a tool is known, so an unknown tool is reported as such whatever its args.
    let args = || input::args_object(&args);
    match tool {
        "create_webhook" => to_value(webhooks::create(hub, caller, "me", &args()?).await?),
        "list_webhooks" => {
            args()?;
            Ok(json!({ "webhooks": webhooks::list(hub, caller, "me").await? }))
        }
        "get_webhook" => {
            let id = id_arg(&args()?, "webhookId")?;
            to_value(webhooks::get(hub, caller, "me", &id).await?)
        }
        "rotate_webhook_secret" => {
            let id = id_arg(&args()?, "webhookId")?;
            to_value(webhooks::rotate(hub, caller, "me", &id).await?)
        }
        "set_provider_secret" => {
            let args = args()?;
            let id = id_arg(&args, "webhookId")?;
            webhooks::set_provider_secret(hub, caller, "me", &id, &args).await?;
            // HTTP answers 204 with no body; the tool's result is the empty object.
            Ok(json!({}))
        }
        "delete_webhook" => {
            let id = id_arg(&args()?, "webhookId")?;
            to_value(webhooks::deactivate(hub, caller, "me", &id).await?)
        }
        "list_deliveries" => {
            let args = args()?;
            let id = id_arg(&args, "webhookId")?;
            let query = webhooks::ActivityQuery {
                limit: query_arg(&args, "limit")?,
                before: query_arg(&args, "before")?,
                status: query_arg(&args, "status")?,
            };
            to_value(webhooks::list_deliveries(hub, caller, "me", &id, &query).await?)
        }
        "redeliver" => {
            let args = args()?;
            let id = id_arg(&args, "webhookId")?;
            let delivery = id_arg(&args, "deliveryId")?;
            let id = webhooks::redeliver(hub, caller, "me", &id, &delivery).await?;
            Ok(json!({ "deliveryId": id, "status": "queued" }))
        }
        "" => Err(ApiError::invalid(
            "tool",
            format!("`tool` is required; tools are: {}", TOOLS.join(", ")),
        )),
        other => Err(ApiError::invalid(
            "tool",
            format!("unknown tool `{other}`; tools are: {}", TOOLS.join(", ")),
        )),
    }
}
