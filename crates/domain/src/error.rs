//! error: a client fault in a catalog object, with a machine-readable code and the JSON path
//! of the field at fault.

use std::fmt;

/// How a field error should be classed at the edge: the request does not match the schema or
/// grammar (`Malformed`, HTTP 400) or it is well-formed but not acceptable (`Unprocessable`, 422).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultClass {
    Malformed,
    Unprocessable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub code: &'static str,
    pub message: String,
    /// JSON path of the fault, e.g. `targeting.all[1].ip_cidr[0]`.
    pub field: String,
    pub class: FaultClass,
}

impl FieldError {
    pub fn malformed(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { code, message: message.into(), field: field.into(), class: FaultClass::Malformed }
    }

    pub fn unprocessable(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { code, message: message.into(), field: field.into(), class: FaultClass::Unprocessable }
    }

    /// Classifies a serde error raised while reading `field`.
    pub fn from_serde(field: String, err: &serde_json::Error) -> Self {
        let msg = err.to_string();
        // serde_json appends " at line X column Y"; that means nothing to an API client.
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        let code = if msg.starts_with("unknown field") {
            "unknown_field"
        } else if msg.starts_with("missing field") {
            "missing_field"
        } else if msg.starts_with("unknown variant") {
            "invalid_value"
        } else if msg.starts_with("invalid type") {
            "invalid_type"
        } else {
            "invalid_value"
        };
        // serde reports a missing field at the enclosing object; name the field itself.
        let field = match (code, msg.split('`').nth(1)) {
            ("missing_field", Some(name)) => join_path(&field, name),
            _ => field,
        };
        FieldError::malformed(code, field, msg)
    }
}

/// Joins a JSON path and a key: `join_path("a.b", "c") == "a.b.c"`, `join_path("", "c") == "c"`.
pub fn join_path(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at `{}`: {}", self.code, self.field, self.message)
    }
}

impl std::error::Error for FieldError {}
