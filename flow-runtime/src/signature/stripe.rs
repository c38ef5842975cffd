//! Stripe webhooks: `Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>...`.
//!
//! Each `v1` entry is a hex HMAC-SHA256 of `"{t}.{body}"`. While a secret is being rolled,
//! Stripe sends one `v1` entry per active secret, so a request is authentic when any entry
//! matches.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flow_core::TriggerPayload;
use subtle::{Choice, ConstantTimeEq};

use super::{
    SIGNATURE_LENGTH, SignatureError, check_secret, check_timestamp, headers_and_body, hmac_sha256,
    malformed, parse_unix_seconds, require_header, signature_bytes,
};

/// Header that carries Stripe's signature, in lowercase as [`TriggerPayload::headers`] stores it.
pub const STRIPE_SIGNATURE_HEADER: &str = "stripe-signature";

/// Tolerance that Stripe's official libraries use by default: 300 seconds.
pub const STRIPE_DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The parts of a `Stripe-Signature` header that verification uses.
struct StripeHeader<'a> {
    /// The `t` value as sent, because the signed payload contains that exact text.
    timestamp_text: &'a str,
    timestamp: i64,
    signatures: Vec<[u8; SIGNATURE_LENGTH]>,
}

/// Parses `t=...,v1=...` entries. Entries with other keys, such as `v0`, are ignored, as
/// Stripe's libraries ignore them.
fn parse_header(value: &str) -> Result<StripeHeader<'_>, SignatureError> {
    let header = STRIPE_SIGNATURE_HEADER;
    let mut timestamp_text = None;
    let mut signatures = Vec::new();

    for entry in value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let Some((key, entry_value)) = entry.split_once('=') else {
            return Err(malformed(
                header,
                "every entry must have the form `key=value`".to_owned(),
            ));
        };
        match key {
            "t" if timestamp_text.is_some() => {
                return Err(malformed(
                    header,
                    "the `t` timestamp appears more than once".to_owned(),
                ));
            }
            "t" => timestamp_text = Some(entry_value),
            "v1" => {
                let Ok(bytes) = hex::decode(entry_value) else {
                    return Err(malformed(
                        header,
                        "a `v1` signature is not valid hex".to_owned(),
                    ));
                };
                signatures.push(signature_bytes(header, &bytes)?);
            }
            _ => {}
        }
    }

    let Some(timestamp_text) = timestamp_text else {
        return Err(malformed(header, "the `t` timestamp is missing".to_owned()));
    };
    if signatures.is_empty() {
        return Err(malformed(header, "no `v1` signature is present".to_owned()));
    }
    Ok(StripeHeader {
        timestamp_text,
        timestamp: parse_unix_seconds(header, timestamp_text)?,
        signatures,
    })
}

/// Verifies Stripe's `Stripe-Signature` header against the raw request body.
///
/// The request is accepted when any `v1` signature matches and the `t` timestamp is at most
/// `tolerance` before or after `now`. Only whole seconds of `tolerance` count. `secret` is the
/// endpoint's signing secret exactly as Stripe shows it, `whsec_` prefix included.
///
/// # Errors
///
/// - [`SignatureError::MissingHeader`] when the header is absent.
/// - [`SignatureError::MalformedHeader`] when it lacks `t` or `v1`, or an entry is invalid.
/// - [`SignatureError::Mismatch`] when no `v1` signature matches.
/// - [`SignatureError::TimestampOutsideTolerance`] when a matching signature is too old or too
///   far in the future.
/// - [`SignatureError::EmptySecret`] when `secret` is empty.
pub fn verify_stripe(
    secret: impl AsRef<[u8]>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let secret = secret.as_ref();
    check_secret(secret)?;
    let header = parse_header(require_header(headers, STRIPE_SIGNATURE_HEADER)?)?;

    let expected = hmac_sha256(secret, &[header.timestamp_text.as_bytes(), b".", body]);
    // Every entry is compared, so the time taken does not reveal which one matched.
    let matched = header
        .signatures
        .iter()
        .fold(Choice::from(0), |matched, signature| {
            matched | expected.ct_eq(signature)
        });
    if !bool::from(matched) {
        return Err(SignatureError::Mismatch {
            header: STRIPE_SIGNATURE_HEADER.to_owned(),
        });
    }

    check_timestamp(header.timestamp, now, tolerance)
}

/// Verifies Stripe's signature on a trigger payload against the current system time.
///
/// # Errors
///
/// Returns the errors of [`verify_stripe`].
pub fn verify_stripe_payload(
    secret: impl AsRef<[u8]>,
    payload: &TriggerPayload,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let (headers, body) = headers_and_body(payload);
    verify_stripe(secret, headers, body, tolerance, Utc::now())
}

/// Signs `body` at `timestamp` (Unix seconds) as Stripe does and returns the
/// `Stripe-Signature` header value, `t=<timestamp>,v1=<hex>`.
pub fn sign_stripe(secret: impl AsRef<[u8]>, timestamp: i64, body: &[u8]) -> String {
    let timestamp_text = timestamp.to_string();
    let signature = hmac_sha256(secret.as_ref(), &[timestamp_text.as_bytes(), b".", body]);
    format!("t={timestamp_text},v1={}", hex::encode(signature))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    const NEW_SECRET: &str = "whsec_new_test_secret";
    const OLD_SECRET: &str = "whsec_old_test_secret";
    const BODY_BASE64: &str =
        "eyJpZCI6ImV2dF90ZXN0XzEiLCJ0eXBlIjoiY2hlY2tvdXQuc2Vzc2lvbi5jb21wbGV0ZWQifQ==";
    const SIGNED_AT: i64 = 1_700_000_000;
    /// `v1` of `NEW_SECRET` over `"1700000000.{body}"`.
    const NEW_V1: &str = "e613da8bb38bee5f2f9a2e605de0ffc91afb48d897fcbd2efdb498477bdc0d4c";
    /// `v1` of `OLD_SECRET` over `"1700000000.{body}"`.
    const OLD_V1: &str = "8b2d433fbb9790d2c6517203cc697af6744a5c257360fb1c05489a81768f2e76";
    const TOLERANCE: Duration = Duration::from_secs(300);

    fn body() -> Vec<u8> {
        BASE64.decode(BODY_BASE64).expect("valid base64")
    }

    fn headers(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("Stripe-Signature".to_owned(), value.to_owned())])
    }

    fn at(unix_seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix_seconds, 0).expect("valid time")
    }

    #[test]
    fn stripe_accepts_valid_signature_listed_first() {
        let headers = headers(&format!("t={SIGNED_AT},v1={NEW_V1},v1={OLD_V1}"));

        let result = verify_stripe(NEW_SECRET, &headers, &body(), TOLERANCE, at(1_700_000_299));

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn stripe_accepts_valid_signature_listed_last() {
        let headers = headers(&format!("t={SIGNED_AT},v1={OLD_V1},v1={NEW_V1}"));

        let result = verify_stripe(NEW_SECRET, &headers, &body(), TOLERANCE, at(1_700_000_300));

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn stripe_rejects_signature_older_than_tolerance() {
        let headers = headers(&format!("t={SIGNED_AT},v1={NEW_V1}"));

        let result = verify_stripe(NEW_SECRET, &headers, &body(), TOLERANCE, at(1_700_000_301));

        assert_eq!(
            result,
            Err(SignatureError::TimestampOutsideTolerance {
                age_seconds: 301,
                tolerance_seconds: 300
            })
        );
    }

    #[test]
    fn stripe_accepts_old_secret_matching_one_entry() {
        let headers = headers(&format!("t={SIGNED_AT},v1={NEW_V1},v1={OLD_V1}"));

        let result = verify_stripe(OLD_SECRET, &headers, &body(), TOLERANCE, at(1_700_000_010));

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn stripe_rejects_timestamp_too_far_in_future() {
        let signature = sign_stripe(NEW_SECRET, SIGNED_AT, &body());

        let result = verify_stripe(
            NEW_SECRET,
            &headers(&signature),
            &body(),
            TOLERANCE,
            at(1_699_999_699),
        );

        assert_eq!(
            result,
            Err(SignatureError::TimestampOutsideTolerance {
                age_seconds: -301,
                tolerance_seconds: 300
            })
        );
    }

    #[test]
    fn stripe_rejects_unknown_secret() {
        let headers = headers(&format!("t={SIGNED_AT},v1={NEW_V1},v1={OLD_V1}"));

        let result = verify_stripe("whsec_other", &headers, &body(), TOLERANCE, at(SIGNED_AT));

        assert_eq!(
            result,
            Err(SignatureError::Mismatch {
                header: STRIPE_SIGNATURE_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn stripe_rejects_signature_moved_to_another_timestamp() {
        let headers = headers(&format!("t={},v1={NEW_V1}", SIGNED_AT + 1));

        let result = verify_stripe(NEW_SECRET, &headers, &body(), TOLERANCE, at(SIGNED_AT));

        assert!(
            matches!(result, Err(SignatureError::Mismatch { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn sign_stripe_reproduces_fixture_signatures() {
        assert_eq!(
            sign_stripe(NEW_SECRET, SIGNED_AT, &body()),
            format!("t={SIGNED_AT},v1={NEW_V1}")
        );
        assert_eq!(
            sign_stripe(OLD_SECRET, SIGNED_AT, &body()),
            format!("t={SIGNED_AT},v1={OLD_V1}")
        );
    }

    #[test]
    fn stripe_ignores_other_schemes_and_spaces() {
        let headers = headers(&format!("t={SIGNED_AT}, v0=abc, v1={NEW_V1}"));

        let result = verify_stripe(NEW_SECRET, &headers, &body(), TOLERANCE, at(SIGNED_AT));

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn stripe_rejects_header_without_timestamp() {
        let error = verify_stripe(
            NEW_SECRET,
            &headers(&format!("v1={NEW_V1}")),
            &body(),
            TOLERANCE,
            at(SIGNED_AT),
        )
        .expect_err("no t");

        assert!(
            error.to_string().contains("the `t` timestamp is missing"),
            "{error}"
        );
    }

    #[test]
    fn stripe_rejects_header_without_v1_signature() {
        let error = verify_stripe(
            NEW_SECRET,
            &headers(&format!("t={SIGNED_AT},v0=abc")),
            &body(),
            TOLERANCE,
            at(SIGNED_AT),
        )
        .expect_err("no v1");

        assert!(error.to_string().contains("no `v1` signature"), "{error}");
    }

    #[test]
    fn stripe_rejects_non_numeric_timestamp() {
        let error = verify_stripe(
            NEW_SECRET,
            &headers(&format!("t=soon,v1={NEW_V1}")),
            &body(),
            TOLERANCE,
            at(SIGNED_AT),
        )
        .expect_err("t is text");

        assert!(error.to_string().contains("not a Unix time"), "{error}");
    }

    #[test]
    fn stripe_rejects_entry_without_equals_sign() {
        let error = verify_stripe(
            NEW_SECRET,
            &headers(&format!("t={SIGNED_AT},{NEW_V1}")),
            &body(),
            TOLERANCE,
            at(SIGNED_AT),
        )
        .expect_err("bare entry");

        assert!(
            matches!(error, SignatureError::MalformedHeader { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn stripe_rejects_repeated_timestamp() {
        let value = format!("t={SIGNED_AT},t={SIGNED_AT},v1={NEW_V1}");

        let error = verify_stripe(
            NEW_SECRET,
            &headers(&value),
            &body(),
            TOLERANCE,
            at(SIGNED_AT),
        )
        .expect_err("two t");

        assert!(error.to_string().contains("more than once"), "{error}");
    }

    #[test]
    fn stripe_rejects_wrong_length_v1_signature() {
        let value = format!("t={SIGNED_AT},v1={}", &NEW_V1[..32]);

        let error = verify_stripe(
            NEW_SECRET,
            &headers(&value),
            &body(),
            TOLERANCE,
            at(SIGNED_AT),
        )
        .expect_err("16 bytes");

        assert!(error.to_string().contains("is 16 bytes long"), "{error}");
    }

    #[test]
    fn stripe_rejects_missing_header() {
        let result = verify_stripe(
            NEW_SECRET,
            &BTreeMap::new(),
            &body(),
            TOLERANCE,
            at(SIGNED_AT),
        );

        assert_eq!(
            result,
            Err(SignatureError::MissingHeader {
                header: STRIPE_SIGNATURE_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn stripe_payload_verification_uses_current_time() {
        let now = Utc::now().timestamp();
        let mut payload = TriggerPayload::default();
        payload.raw_body.data = body();
        payload.headers.insert(
            STRIPE_SIGNATURE_HEADER.to_owned(),
            sign_stripe(NEW_SECRET, now, &body()),
        );

        let result = verify_stripe_payload(NEW_SECRET, &payload, STRIPE_DEFAULT_TOLERANCE);

        assert_eq!(result, Ok(()));
    }
}
