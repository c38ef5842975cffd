//! Webhook signature verification for custom triggers.
//!
//! Every check computes an HMAC-SHA256 over the raw request bytes (`payload.raw_body.data`),
//! never over JSON serialized again, because a parser and a serializer rarely reproduce the
//! sender's bytes. Signatures are compared in constant time with [`subtle::ConstantTimeEq`].
//! Header names match case-insensitively.
//!
//! Each scheme has a `verify_*` function over the headers and the body, a `verify_*_payload`
//! function over a [`TriggerPayload`], and a `sign_*` function that returns the header value
//! the sender would send. [`HmacSha256Verifier`] covers senders that put a hex or base64
//! HMAC-SHA256 of the body in a header of their choice.
//!
//! A [`SignatureError`] converts into a 401 [`TriggerError`], so `?` in a trigger rejects the
//! request:
//!
//! ```
//! use flow_runtime::prelude::*;
//! use flow_runtime::signature::verify_github_payload;
//!
//! async fn on_trigger(
//!     ctx: &TriggerContext,
//!     payload: TriggerPayload,
//! ) -> Result<TriggerResult, TriggerError> {
//!     let secret = ctx
//!         .config_var("github_webhook_secret")
//!         .map_err(|error| TriggerError::internal(error.to_string()))?;
//!     verify_github_payload(&secret, &payload)?;
//!     Ok(payload.into())
//! }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use flow_core::{TriggerError, TriggerPayload};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

mod generic;
mod github;
mod shopify;
mod slack;
mod stripe;

pub use generic::HmacSha256Verifier;
pub use github::{GITHUB_SIGNATURE_HEADER, sign_github, verify_github, verify_github_payload};
pub use shopify::{SHOPIFY_SIGNATURE_HEADER, sign_shopify, verify_shopify, verify_shopify_payload};
pub use slack::{
    SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER, SLACK_TOLERANCE, sign_slack, verify_slack,
    verify_slack_payload,
};
pub use stripe::{
    STRIPE_DEFAULT_TOLERANCE, STRIPE_SIGNATURE_HEADER, sign_stripe, verify_stripe,
    verify_stripe_payload,
};

/// Length in bytes of an HMAC-SHA256 signature.
const SIGNATURE_LENGTH: usize = 32;

/// A rejected webhook signature.
///
/// Messages name the header and what is wrong with it. They never contain the secret or the
/// expected signature, so they are safe to send back to the caller and to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The request lacks a header the scheme requires.
    #[error("the request has no `{header}` header, so its signature cannot be verified")]
    MissingHeader {
        /// Header name.
        header: String,
    },
    /// A header is present but does not have the scheme's format.
    #[error("malformed `{header}` header: {reason}")]
    MalformedHeader {
        /// Header name.
        header: String,
        /// Reason the value is invalid.
        reason: String,
    },
    /// The signed timestamp is further from the current time than the tolerance allows.
    #[error(
        "signature timestamp is {}, outside the {tolerance_seconds}-second tolerance, \
         so the request may be a replay or the sender's clock may be wrong",
        describe_age(*.age_seconds)
    )]
    TimestampOutsideTolerance {
        /// Current time minus the signed timestamp, in seconds. It is negative for a timestamp in
        /// the future.
        age_seconds: i64,
        /// Largest accepted distance from the current time, in seconds.
        tolerance_seconds: u64,
    },
    /// The signature does not match the body, so the secret differs or the body was changed.
    #[error(
        "signature in the `{header}` header does not match the request body, \
         so the signing secret differs or the body was changed in transit"
    )]
    Mismatch {
        /// Header that carried the signature.
        header: String,
    },
    /// The secret is empty, which would let anyone compute a valid signature.
    #[error(
        "the signing secret is empty, so no request can be verified. Configure a non-empty secret"
    )]
    EmptySecret,
}

impl From<SignatureError> for TriggerError {
    /// Rejects the request with 401 Unauthorized and the error's message.
    fn from(error: SignatureError) -> Self {
        Self::unauthorized(error.to_string())
    }
}

fn describe_age(age_seconds: i64) -> String {
    if age_seconds < 0 {
        format!("{} seconds in the future", age_seconds.unsigned_abs())
    } else {
        format!("{age_seconds} seconds old")
    }
}

/// Text encoding of the signature bytes in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Hexadecimal digits in upper or lower case. Signing writes lower case.
    Hex,
    /// Standard base64 with padding (RFC 4648).
    Base64,
}

impl SignatureEncoding {
    fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Hex => hex::encode(bytes),
            Self::Base64 => BASE64.encode(bytes),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }
}

/// Layout of a signature header: its name, a fixed prefix before the signature and the encoding.
#[derive(Debug, Clone, Copy)]
struct SignatureFormat<'a> {
    header: &'a str,
    prefix: &'a str,
    encoding: SignatureEncoding,
}

impl SignatureFormat<'_> {
    /// Returns the header value that signs `message`.
    fn sign(&self, secret: &[u8], message: &[&[u8]]) -> String {
        let signature = hmac_sha256(secret, message);
        format!("{}{}", self.prefix, self.encoding.encode(&signature))
    }

    /// Checks that the header's signature is the HMAC-SHA256 of `message`.
    fn verify(
        &self,
        secret: &[u8],
        headers: &BTreeMap<String, String>,
        message: &[&[u8]],
    ) -> Result<(), SignatureError> {
        check_secret(secret)?;
        let value = require_header(headers, self.header)?;
        let signature = self.decode(value)?;

        let expected = hmac_sha256(secret, message);
        if bool::from(expected.ct_eq(&signature)) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch {
                header: self.header.to_owned(),
            })
        }
    }

    /// Strips the prefix and decodes the signature bytes.
    fn decode(&self, value: &str) -> Result<[u8; SIGNATURE_LENGTH], SignatureError> {
        let encoding = self.encoding.name();
        let Some(encoded) = value.trim().strip_prefix(self.prefix) else {
            return Err(malformed(
                self.header,
                format!(
                    "expected `{}` followed by a {encoding} HMAC-SHA256",
                    self.prefix
                ),
            ));
        };

        let bytes = match self.encoding {
            SignatureEncoding::Hex => hex::decode(encoded).ok(),
            SignatureEncoding::Base64 => BASE64.decode(encoded).ok(),
        };
        let Some(bytes) = bytes else {
            return Err(malformed(
                self.header,
                format!("the signature is not valid {encoding}"),
            ));
        };
        signature_bytes(self.header, &bytes)
    }
}

/// Computes the HMAC-SHA256 of the concatenation of `parts`.
fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> [u8; SIGNATURE_LENGTH] {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Converts decoded bytes into a signature, rejecting any length other than 32 bytes.
fn signature_bytes(header: &str, bytes: &[u8]) -> Result<[u8; SIGNATURE_LENGTH], SignatureError> {
    <[u8; SIGNATURE_LENGTH]>::try_from(bytes).map_err(|_| {
        malformed(
            header,
            format!(
                "the signature is {} bytes long, but an HMAC-SHA256 is {SIGNATURE_LENGTH} bytes",
                bytes.len()
            ),
        )
    })
}

fn check_secret(secret: &[u8]) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    Ok(())
}

/// Returns the value of the header `name`, compared case-insensitively.
fn require_header<'a>(
    headers: &'a BTreeMap<String, String>,
    name: &str,
) -> Result<&'a str, SignatureError> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
        .ok_or_else(|| SignatureError::MissingHeader {
            header: name.to_owned(),
        })
}

/// Parses a Unix timestamp in seconds from a header value.
fn parse_unix_seconds(header: &str, text: &str) -> Result<i64, SignatureError> {
    text.parse().map_err(|_| {
        malformed(
            header,
            "the timestamp is not a Unix time in whole seconds".to_owned(),
        )
    })
}

/// Rejects a timestamp more than `tolerance` before or after `now`.
///
/// Only whole seconds of `tolerance` count.
fn check_timestamp(
    timestamp: i64,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let age_seconds = now.timestamp().saturating_sub(timestamp);
    let tolerance_seconds = tolerance.as_secs();
    if age_seconds.unsigned_abs() > tolerance_seconds {
        return Err(SignatureError::TimestampOutsideTolerance {
            age_seconds,
            tolerance_seconds,
        });
    }
    Ok(())
}

fn malformed(header: &str, reason: String) -> SignatureError {
    SignatureError::MalformedHeader {
        header: header.to_owned(),
        reason,
    }
}

/// Returns the request headers and raw body of a payload.
fn headers_and_body(payload: &TriggerPayload) -> (&BTreeMap<String, String>, &[u8]) {
    (&payload.headers, &payload.raw_body.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github_headers(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(GITHUB_SIGNATURE_HEADER.to_owned(), value.to_owned())])
    }

    #[test]
    fn conversion_gives_status_401() {
        let error = SignatureError::Mismatch {
            header: GITHUB_SIGNATURE_HEADER.to_owned(),
        };

        let trigger_error = TriggerError::from(error);

        assert_eq!(trigger_error.status, 401);
    }

    #[test]
    fn conversion_keeps_error_message() {
        let error = SignatureError::MissingHeader {
            header: GITHUB_SIGNATURE_HEADER.to_owned(),
        };
        let message = error.to_string();

        let trigger_error = TriggerError::from(error);

        assert_eq!(trigger_error.message, message);
    }

    #[test]
    fn question_mark_in_trigger_returns_401() {
        fn on_trigger(payload: &TriggerPayload) -> Result<(), TriggerError> {
            verify_github_payload("It's a Secret to Everybody", payload)?;
            Ok(())
        }
        let payload = TriggerPayload::default();

        let error = on_trigger(&payload).expect_err("an unsigned request is rejected");

        assert_eq!(error.status, 401);
        assert!(
            error.message.contains(GITHUB_SIGNATURE_HEADER),
            "{}",
            error.message
        );
    }

    #[test]
    fn missing_header_error_names_the_header() {
        let error = verify_github("secret", &BTreeMap::new(), b"{}").expect_err("no header");

        assert_eq!(
            error,
            SignatureError::MissingHeader {
                header: GITHUB_SIGNATURE_HEADER.to_owned()
            }
        );
        assert!(
            error.to_string().contains("`x-hub-signature-256`"),
            "{error}"
        );
    }

    #[test]
    fn header_lookup_ignores_case_of_stored_names() {
        let headers = BTreeMap::from([("X-Hub-Signature-256".to_owned(), "sha256=00".to_owned())]);

        let value = require_header(&headers, "x-hub-SIGNATURE-256");

        assert_eq!(value, Ok("sha256=00"));
    }

    #[test]
    fn mismatch_message_omits_secret_and_expected_signature() {
        let secret = "a_secret_that_must_not_leak";
        let body = b"{\"id\":1}";
        let expected = sign_github(secret, body);
        let wrong = sign_github("another_secret", body);

        let error = verify_github(secret, &github_headers(&wrong), body).expect_err("wrong secret");
        let message = error.to_string();

        assert!(!message.contains(secret), "{message}");
        assert!(
            !message.contains(expected.trim_start_matches("sha256=")),
            "{message}"
        );
    }

    #[test]
    fn malformed_message_omits_secret_and_expected_signature() {
        let secret = "a_secret_that_must_not_leak";
        let body = b"{\"id\":1}";
        let expected = sign_github(secret, body);

        let error = verify_github(secret, &github_headers("sha256=zz"), body).expect_err("not hex");
        let message = error.to_string();

        assert!(!message.contains(secret), "{message}");
        assert!(
            !message.contains(expected.trim_start_matches("sha256=")),
            "{message}"
        );
    }

    #[test]
    fn empty_secret_is_rejected() {
        let body = b"{}";
        let signature = sign_github("", body);

        let result = verify_github("", &github_headers(&signature), body);

        assert_eq!(result, Err(SignatureError::EmptySecret));
    }

    #[test]
    fn timestamp_at_the_tolerance_is_accepted() {
        let now = DateTime::from_timestamp(1_700_000_300, 0).expect("valid time");

        let result = check_timestamp(1_700_000_000, now, Duration::from_secs(300));

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn timestamp_error_reports_age_and_tolerance() {
        let now = DateTime::from_timestamp(1_700_000_301, 0).expect("valid time");

        let error =
            check_timestamp(1_700_000_000, now, Duration::from_secs(300)).expect_err("too old");

        assert_eq!(
            error,
            SignatureError::TimestampOutsideTolerance {
                age_seconds: 301,
                tolerance_seconds: 300
            }
        );
        assert!(error.to_string().contains("301 seconds old"), "{error}");
        assert!(
            error.to_string().contains("300-second tolerance"),
            "{error}"
        );
    }

    #[test]
    fn timestamp_error_describes_a_future_timestamp() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");

        let error =
            check_timestamp(1_700_000_400, now, Duration::from_secs(300)).expect_err("too new");

        assert!(
            error.to_string().contains("400 seconds in the future"),
            "{error}"
        );
    }

    #[test]
    fn extreme_timestamp_is_rejected_without_overflow() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid time");

        let result = check_timestamp(i64::MIN, now, Duration::from_secs(300));

        assert!(
            matches!(
                result,
                Err(SignatureError::TimestampOutsideTolerance { .. })
            ),
            "{result:?}"
        );
    }
}
