//! Endpoint security: which API key, if any, a webhook request must carry.

use serde::{Deserialize, Serialize};

use crate::violation::Violation;

/// Name of the request header that carries the API key (matched case-insensitively).
pub const API_KEY_HEADER: &str = "Api-Key";

/// Who holds the key a flow's webhook requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointSecurity {
    /// No key is checked.
    Unsecured,
    /// A key is required only where the instance set one for the flow.
    #[default]
    CustomerOptional,
    /// The instance must set a key for the flow, and every request must carry it.
    CustomerRequired,
    /// Every request must carry one of the flow's organization keys.
    Organization,
}

impl EndpointSecurity {
    /// Attribute spellings.
    pub const NAMES: &'static [&'static str] =
        &["unsecured", "customer_optional", "customer_required", "organization"];

    /// Parses an attribute spelling such as `"customer_required"`.
    ///
    /// # Errors
    ///
    /// Returns a [`Violation`] on `endpoint_security` listing the valid values.
    pub fn parse(text: &str) -> Result<Self, Violation> {
        match text {
            "unsecured" => Ok(Self::Unsecured),
            "customer_optional" => Ok(Self::CustomerOptional),
            "customer_required" => Ok(Self::CustomerRequired),
            "organization" => Ok(Self::Organization),
            other => Err(Violation::new(
                "endpoint_security",
                format!(
                    "`endpoint_security` must be one of \"unsecured\", \"customer_optional\", \
                     \"customer_required\" or \"organization\", got \"{other}\"; \
                     e.g. `endpoint_security = \"customer_required\"`"
                ),
            )),
        }
    }
}

/// Where an organization API key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApiKeySource {
    /// The key written in the attribute.
    Literal(String),
    /// The key read from this environment variable when the runtime starts.
    Env(String),
}

impl ApiKeySource {
    /// Resolves the key; `lookup` reads environment variables.
    ///
    /// # Errors
    ///
    /// Returns a message naming the variable when it is unset or empty.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        match self {
            Self::Literal(key) => Ok(key.clone()),
            Self::Env(variable) => match lookup(variable) {
                Some(key) if !key.is_empty() => Ok(key),
                _ => Err(format!(
                    "environment variable `{variable}` holds an organization API key but is unset or empty; \
                     set it before starting the runtime"
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_every_documented_name() {
        for name in EndpointSecurity::NAMES {
            assert!(EndpointSecurity::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn parse_rejects_unknown_name() {
        assert!(EndpointSecurity::parse("public").is_err());
    }

    #[test]
    fn env_key_resolves_from_lookup() {
        let source = ApiKeySource::Env("ORG_KEY".into());
        assert_eq!(source.resolve(|_| Some("k1".into())), Ok("k1".into()));
    }

    #[test]
    fn unset_env_key_names_the_variable() {
        let source = ApiKeySource::Env("ORG_KEY".into());
        let error = source.resolve(|_| None).expect_err("unset");
        assert!(error.contains("`ORG_KEY`"), "{error}");
    }
}
