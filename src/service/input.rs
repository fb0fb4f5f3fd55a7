//! Reading JSON input with errors that name the field at fault. Shared by the HTTP API and
//! the socket tools, so the same bad input gets the same error either way.

use serde_json::{Map, Value};

use crate::error::ApiError;

pub type Object = Map<String, Value>;

/// A request body that must be a JSON object (an empty body counts as `{}`).
pub fn parse_object(body: &[u8]) -> Result<Object, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Object::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("body", "the body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(
            "body",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// Tool arguments: a JSON object, or nothing.
pub fn args_object(args: &Value) -> Result<Object, ApiError> {
    match args {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Object::new()),
        _ => Err(ApiError::invalid("args", "args must be a JSON object")),
    }
}

/// A required string of 1 to `max` characters (after trimming surrounding whitespace).
pub fn required_str(obj: &Object, field: &'static str, max: usize) -> Result<String, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ApiError::invalid(field, format!("`{field}` is required"))),
        Some(value) => checked_str(value, field, max),
    }
}

pub fn optional_str(
    obj: &Object,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => checked_str(value, field, max).map(Some),
    }
}

fn checked_str(value: &Value, field: &'static str, max: usize) -> Result<String, ApiError> {
    let Value::String(s) = value else {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be a string"),
        ));
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must not be empty"),
        ));
    }
    if s.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be at most {max} characters"),
        ));
    }
    Ok(s.to_owned())
}
