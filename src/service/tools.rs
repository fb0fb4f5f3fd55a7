//! The agent's self-service tools, called over its socket as `call` frames. Each tool is
//! the HTTP operation of the same name on the agent's own webhooks (`me`), through the
//! same service functions, so results and error codes are the same either way.

use serde::Serialize;
use serde_json::{json, Value};

use super::{
    input::{self, Object},
    webhooks, Hub,
};
use crate::{auth::Caller, error::ApiError};

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

/// Runs a tool; the error is `(code, message)` as a `result` frame carries it.
pub async fn call(
    hub: &Hub,
    caller: &Caller,
    tool: &str,
    args: Value,
) -> Result<Value, (&'static str, String)> {
    run(hub, caller, tool, args).await.map_err(|e| {
        if let ApiError::Internal(cause) = &e {
            tracing::error!(tool, error = %cause, "tool call failed");
        }
        let message = match &e {
            ApiError::InvalidRequest { field: Some(f), .. } => {
                format!("{} (field: {f})", e.public_message())
            }
            _ => e.public_message(),
        };
        (e.code(), message)
    })
}

fn to_value(v: impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

async fn run(hub: &Hub, caller: &Caller, tool: &str, args: Value) -> Result<Value, ApiError> {
    let args = input::args_object(&args)?;
    let webhook_id = |args: &Object| input::required_str(args, "webhookId", 64);
    let delivery_id = |args: &Object| input::required_str(args, "deliveryId", 64);
    match tool {
        "create_webhook" => to_value(webhooks::create(hub, caller, "me", &args).await?),
        "list_webhooks" => Ok(json!({ "webhooks": webhooks::list(hub, caller, "me").await? })),
        "get_webhook" => to_value(webhooks::get(hub, caller, "me", &webhook_id(&args)?).await?),
        "rotate_webhook_secret" => {
            to_value(webhooks::rotate(hub, caller, "me", &webhook_id(&args)?).await?)
        }
        "set_provider_secret" => {
            let id = webhook_id(&args)?;
            webhooks::set_provider_secret(hub, caller, "me", &id, &args).await?;
            Ok(json!({ "webhookId": id }))
        }
        "delete_webhook" => {
            to_value(webhooks::deactivate(hub, caller, "me", &webhook_id(&args)?).await?)
        }
        "list_deliveries" => {
            let id = webhook_id(&args)?;
            let text = |field: &'static str| -> Result<Option<String>, ApiError> {
                match args.get(field) {
                    Some(Value::Number(n)) => Ok(Some(n.to_string())),
                    _ => input::optional_str(&args, field, 64),
                }
            };
            let query = webhooks::ActivityQuery {
                limit: text("limit")?,
                before: text("before")?,
                status: text("status")?,
            };
            to_value(webhooks::list_deliveries(hub, caller, "me", &id, &query).await?)
        }
        "redeliver" => {
            let id = webhook_id(&args)?;
            let delivery = delivery_id(&args)?;
            let id = webhooks::redeliver(hub, caller, "me", &id, &delivery).await?;
            Ok(json!({ "deliveryId": id, "status": "queued" }))
        }
        other => Err(ApiError::InvalidRequest {
            field: Some("tool"),
            message: format!("unknown tool `{other}`; tools are: {}", TOOLS.join(", ")),
        }),
    }
}
