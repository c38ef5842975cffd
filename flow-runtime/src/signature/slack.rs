//! Slack requests, signature version `v0`: `X-Slack-Signature: v0=<hex>` is the HMAC-SHA256 of
//! `v0:{X-Slack-Request-Timestamp}:{body}`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use flow_core::TriggerPayload;

use super::{
    SignatureEncoding, SignatureError, SignatureFormat, check_secret, check_timestamp,
    headers_and_body, parse_unix_seconds, require_header,
};

/// Header that carries Slack's signature, in lowercase as [`TriggerPayload::headers`] stores it.
pub const SLACK_SIGNATURE_HEADER: &str = "x-slack-signature";

/// Header that carries the Unix time, in seconds, at which Slack signed the request.
pub const SLACK_TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// Largest accepted distance between the request timestamp and the current time: five minutes,
/// the window Slack's signing guide recommends.
pub const SLACK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

const FORMAT: SignatureFormat<'static> = SignatureFormat {
    header: SLACK_SIGNATURE_HEADER,
    prefix: "v0=",
    encoding: SignatureEncoding::Hex,
};

/// Verifies Slack's `X-Slack-Signature` and `X-Slack-Request-Timestamp` headers against the
/// raw request body.
///
/// The timestamp must be at most [`SLACK_TOLERANCE`] before or after `now`.
///
/// # Errors
///
/// - [`SignatureError::MissingHeader`] when either header is absent.
/// - [`SignatureError::MalformedHeader`] when the timestamp is not an integer, or the signature
///   is not `v0=` followed by 64 hex digits.
/// - [`SignatureError::Mismatch`] when the signature does not match.
/// - [`SignatureError::TimestampOutsideTolerance`] when a matching signature is outside the
///   window.
/// - [`SignatureError::EmptySecret`] when `secret` is empty.
pub fn verify_slack(
    secret: impl AsRef<[u8]>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let secret = secret.as_ref();
    check_secret(secret)?;
    let timestamp_text = require_header(headers, SLACK_TIMESTAMP_HEADER)?.trim();
    let timestamp = parse_unix_seconds(SLACK_TIMESTAMP_HEADER, timestamp_text)?;

    FORMAT.verify(secret, headers, &basestring(timestamp_text, body))?;
    check_timestamp(timestamp, now, SLACK_TOLERANCE)
}

/// Verifies Slack's signature on a trigger payload against the current system time.
///
/// # Errors
///
/// Returns the errors of [`verify_slack`].
pub fn verify_slack_payload(
    secret: impl AsRef<[u8]>,
    payload: &TriggerPayload,
) -> Result<(), SignatureError> {
    let (headers, body) = headers_and_body(payload);
    verify_slack(secret, headers, body, Utc::now())
}

/// Signs `body` at `timestamp` (Unix seconds) as Slack does and returns the
/// `X-Slack-Signature` header value, `v0=<hex>`.
///
/// The request also needs `X-Slack-Request-Timestamp` set to `timestamp`.
pub fn sign_slack(secret: impl AsRef<[u8]>, timestamp: i64, body: &[u8]) -> String {
    FORMAT.sign(secret.as_ref(), &basestring(&timestamp.to_string(), body))
}

/// Returns the parts of the signed string `v0:{timestamp}:{body}`, the timestamp as sent.
fn basestring<'a>(timestamp_text: &'a str, body: &'a [u8]) -> [&'a [u8]; 4] {
    [b"v0:", timestamp_text.as_bytes(), b":", body]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Example request from Slack's "Verifying requests from Slack" guide (a slash command).
    /// Python's `hmac` module computes the same signature.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: &str = "1531420618";
    const DOC_BODY: &str = concat!(
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow",
        "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner",
        "&command=%2Fwebhook-collect&text=",
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN",
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
    );
    const DOC_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    /// An Events API body signed with Python's `hmac` module:
    /// `hmac.new(secret, b"v0:1700000000:" + body, hashlib.sha256).hexdigest()`.
    const EVENT_SECRET: &str = "slack_test_signing_secret";
    const EVENT_TIMESTAMP: i64 = 1_700_000_000;
    const EVENT_BODY: &[u8] =
        br#"{"type":"event_callback","event":{"type":"app_mention","text":"hi"}}"#;
    const EVENT_SIGNATURE: &str =
        "v0=dd2737817070f4a7015b159e79b2f25091e252ec6cdbad206e7f2ef63b4a2f53";

    fn headers(timestamp: &str, signature: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("X-Slack-Request-Timestamp".to_owned(), timestamp.to_owned()),
            ("X-Slack-Signature".to_owned(), signature.to_owned()),
        ])
    }

    fn at(unix_seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(unix_seconds, 0).expect("valid time")
    }

    #[test]
    fn slack_accepts_documentation_example() {
        let headers = headers(DOC_TIMESTAMP, DOC_SIGNATURE);

        let result = verify_slack(
            DOC_SECRET,
            &headers,
            DOC_BODY.as_bytes(),
            at(1_531_420_618 + 60),
        );

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn slack_accepts_python_computed_event_signature() {
        let headers = headers(&EVENT_TIMESTAMP.to_string(), EVENT_SIGNATURE);

        let result = verify_slack(EVENT_SECRET, &headers, EVENT_BODY, at(EVENT_TIMESTAMP));

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn sign_slack_reproduces_known_signatures() {
        assert_eq!(
            sign_slack(DOC_SECRET, 1_531_420_618, DOC_BODY.as_bytes()),
            DOC_SIGNATURE
        );
        assert_eq!(
            sign_slack(EVENT_SECRET, EVENT_TIMESTAMP, EVENT_BODY),
            EVENT_SIGNATURE
        );
    }

    #[test]
    fn slack_accepts_request_signed_by_sign_slack() {
        let body = b"payload=%7B%22type%22%3A%22block_actions%22%7D";
        let signature = sign_slack("another_secret", 1_700_000_123, body);

        let result = verify_slack(
            "another_secret",
            &headers("1700000123", &signature),
            body,
            at(1_700_000_123),
        );

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn slack_accepts_timestamp_five_minutes_old() {
        let headers = headers(&EVENT_TIMESTAMP.to_string(), EVENT_SIGNATURE);

        let result = verify_slack(
            EVENT_SECRET,
            &headers,
            EVENT_BODY,
            at(EVENT_TIMESTAMP + 300),
        );

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn slack_rejects_timestamp_older_than_five_minutes() {
        let headers = headers(&EVENT_TIMESTAMP.to_string(), EVENT_SIGNATURE);

        let result = verify_slack(
            EVENT_SECRET,
            &headers,
            EVENT_BODY,
            at(EVENT_TIMESTAMP + 301),
        );

        assert_eq!(
            result,
            Err(SignatureError::TimestampOutsideTolerance {
                age_seconds: 301,
                tolerance_seconds: 300
            })
        );
    }

    #[test]
    fn slack_rejects_timestamp_far_in_future() {
        let headers = headers(&EVENT_TIMESTAMP.to_string(), EVENT_SIGNATURE);

        let result = verify_slack(
            EVENT_SECRET,
            &headers,
            EVENT_BODY,
            at(EVENT_TIMESTAMP - 301),
        );

        assert!(
            matches!(
                result,
                Err(SignatureError::TimestampOutsideTolerance {
                    age_seconds: -301,
                    ..
                })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn slack_rejects_signature_replayed_with_new_timestamp() {
        let headers = headers(&(EVENT_TIMESTAMP + 600).to_string(), EVENT_SIGNATURE);

        let result = verify_slack(
            EVENT_SECRET,
            &headers,
            EVENT_BODY,
            at(EVENT_TIMESTAMP + 600),
        );

        assert_eq!(
            result,
            Err(SignatureError::Mismatch {
                header: SLACK_SIGNATURE_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn slack_rejects_missing_timestamp_header() {
        let headers = BTreeMap::from([(
            SLACK_SIGNATURE_HEADER.to_owned(),
            EVENT_SIGNATURE.to_owned(),
        )]);

        let result = verify_slack(EVENT_SECRET, &headers, EVENT_BODY, at(EVENT_TIMESTAMP));

        assert_eq!(
            result,
            Err(SignatureError::MissingHeader {
                header: SLACK_TIMESTAMP_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn slack_rejects_missing_signature_header() {
        let headers = BTreeMap::from([(
            SLACK_TIMESTAMP_HEADER.to_owned(),
            EVENT_TIMESTAMP.to_string(),
        )]);

        let result = verify_slack(EVENT_SECRET, &headers, EVENT_BODY, at(EVENT_TIMESTAMP));

        assert_eq!(
            result,
            Err(SignatureError::MissingHeader {
                header: SLACK_SIGNATURE_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn slack_rejects_non_numeric_timestamp() {
        let headers = headers("yesterday", EVENT_SIGNATURE);

        let error = verify_slack(EVENT_SECRET, &headers, EVENT_BODY, at(EVENT_TIMESTAMP))
            .expect_err("not a number");

        assert!(
            error.to_string().contains("`x-slack-request-timestamp`"),
            "{error}"
        );
    }

    #[test]
    fn slack_rejects_signature_of_unknown_version() {
        let headers = headers(
            &EVENT_TIMESTAMP.to_string(),
            &EVENT_SIGNATURE.replace("v0=", "v1="),
        );

        let error =
            verify_slack(EVENT_SECRET, &headers, EVENT_BODY, at(EVENT_TIMESTAMP)).expect_err("v1");

        assert!(error.to_string().contains("expected `v0=`"), "{error}");
    }

    #[test]
    fn slack_payload_verification_uses_current_time() {
        let now = Utc::now().timestamp();
        let mut payload = TriggerPayload::default();
        payload.raw_body.data = EVENT_BODY.to_vec();
        payload.headers = headers(&now.to_string(), &sign_slack(EVENT_SECRET, now, EVENT_BODY));

        let result = verify_slack_payload(EVENT_SECRET, &payload);

        assert_eq!(result, Ok(()));
    }
}
