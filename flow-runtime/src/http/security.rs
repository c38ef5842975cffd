//! Endpoint security: the `Api-Key` header check before a webhook request runs anything.

use flow_core::EndpointSecurity;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::definition::Flow;
use crate::instance::Instance;

/// Lowercase name of the API key header, as `http` stores header names.
pub(crate) const API_KEY_HEADER: &str = "api-key";

/// Why a request was rejected with 401; the message never contains a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unauthorized(pub(crate) String);

/// Checks the request's API key against the flow's security mode.
///
/// `organization_keys` are the flow's organization keys, resolved at startup.
pub(crate) fn check_api_key(
    flow: &Flow,
    instance: &Instance,
    organization_keys: &[String],
    headers: &HeaderMap,
) -> Result<(), Unauthorized> {
    let expected: &[String] = match flow.config.endpoint_security {
        EndpointSecurity::Unsecured => return Ok(()),
        EndpointSecurity::CustomerOptional => {
            let keys = instance_keys(flow, instance);
            if keys.is_empty() {
                return Ok(());
            }
            keys
        }
        EndpointSecurity::CustomerRequired => {
            let keys = instance_keys(flow, instance);
            if keys.is_empty() {
                return Err(Unauthorized(format!(
                    "flow \"{}\" requires an API key, but instance \"{}\" has none configured; \
                     set api_keys for it in the config file",
                    flow.stable_key(),
                    instance.id
                )));
            }
            keys
        }
        EndpointSecurity::Organization => organization_keys,
    };

    let mut sent = headers.get_all(API_KEY_HEADER).iter();
    let (Some(key), None) = (sent.next(), sent.next()) else {
        return Err(Unauthorized(
            "missing or repeated Api-Key header; send exactly one Api-Key header with a valid key".to_owned(),
        ));
    };
    if matches_any(key.as_bytes(), expected) {
        Ok(())
    } else {
        Err(Unauthorized("invalid API key in the Api-Key header".to_owned()))
    }
}

fn instance_keys<'a>(flow: &Flow, instance: &'a Instance) -> &'a [String] {
    instance.api_keys.get(flow.stable_key()).map_or(&[], Vec::as_slice)
}

/// Compares SHA-256 digests in constant time, so neither the content nor the length of a
/// valid key leaks through timing; every candidate is compared.
fn matches_any(sent: &[u8], expected: &[String]) -> bool {
    let sent_digest = Sha256::digest(sent);
    expected.iter().fold(false, |found, key| {
        let key_digest = Sha256::digest(key.as_bytes());
        found | bool::from(sent_digest.ct_eq(&key_digest))
    })
}

#[cfg(test)]
mod tests {
    use flow_core::FlowConfig;
    use http::HeaderValue;

    use super::*;
    use crate::definition::{Handlers, SourceLocation};

    fn flow(security: EndpointSecurity) -> Flow {
        Flow {
            config: FlowConfig {
                name: "Orders".into(),
                stable_key: "orders".into(),
                endpoint_security: security,
                ..FlowConfig::default()
            },
            execute: |_, _| Box::pin(async { Ok(serde_json::Value::Null.into()) }),
            handlers: Handlers::default(),
            source: SourceLocation {
                file: "test.rs",
                line: 1,
                function: "orders",
            },
        }
    }

    fn instance(keys: &[&str]) -> Instance {
        let mut instance = Instance {
            id: "acme".into(),
            ..Instance::default()
        };
        if !keys.is_empty() {
            instance
                .api_keys
                .insert("orders".into(), keys.iter().map(|key| (*key).to_owned()).collect());
        }
        instance
    }

    fn headers(keys: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for key in keys {
            headers.append("Api-Key", HeaderValue::from_str(key).expect("valid header"));
        }
        headers
    }

    fn check(security: EndpointSecurity, configured: &[&str], sent: &[&str]) -> bool {
        check_api_key(&flow(security), &instance(configured), &[], &headers(sent)).is_ok()
    }

    #[test]
    fn required_key_accepts_the_right_key() {
        assert!(check(EndpointSecurity::CustomerRequired, &["k_test_abc123"], &["k_test_abc123"]));
    }

    #[test]
    fn required_key_rejects_a_missing_header() {
        assert!(!check(EndpointSecurity::CustomerRequired, &["k_test_abc123"], &[]));
    }

    #[test]
    fn required_key_rejects_a_same_length_wrong_key() {
        assert!(!check(EndpointSecurity::CustomerRequired, &["k_test_abc123"], &["k_test_abc124"]));
    }

    #[test]
    fn required_key_rejects_a_short_wrong_key() {
        assert!(!check(EndpointSecurity::CustomerRequired, &["k_test_abc123"], &["wrong"]));
    }

    #[test]
    fn required_key_rejects_two_headers_even_with_the_right_one() {
        assert!(!check(EndpointSecurity::CustomerRequired, &["k_test_abc123"], &["wrong", "k_test_abc123"]));
    }

    #[test]
    fn required_key_without_configured_key_rejects_everything() {
        assert!(!check(EndpointSecurity::CustomerRequired, &[], &["anything"]));
    }

    #[test]
    fn optional_key_without_configured_key_accepts_anything() {
        assert!(check(EndpointSecurity::CustomerOptional, &[], &[]));
    }

    #[test]
    fn optional_key_with_configured_key_requires_it() {
        assert!(!check(EndpointSecurity::CustomerOptional, &["k1"], &[]));
        assert!(check(EndpointSecurity::CustomerOptional, &["k1"], &["k1"]));
    }

    #[test]
    fn unsecured_accepts_a_request_without_key() {
        assert!(check(EndpointSecurity::Unsecured, &["k1"], &[]));
    }

    #[test]
    fn organization_checks_the_organization_keys() {
        let flow = flow(EndpointSecurity::Organization);
        let keys = vec!["org_1".to_owned(), "org_2".to_owned()];
        assert!(check_api_key(&flow, &instance(&[]), &keys, &headers(&["org_2"])).is_ok());
        assert!(check_api_key(&flow, &instance(&[]), &keys, &headers(&["org_3"])).is_err());
    }

    #[test]
    fn rejection_message_never_contains_the_key() {
        let error = check_api_key(
            &flow(EndpointSecurity::CustomerRequired),
            &instance(&["k_test_abc123"]),
            &[],
            &headers(&["k_test_abc124"]),
        )
        .expect_err("wrong key");
        assert!(!error.0.contains("k_test_abc12"), "{}", error.0);
    }
}
