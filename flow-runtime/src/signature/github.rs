//! GitHub webhooks: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.

use std::collections::BTreeMap;

use flow_core::TriggerPayload;

use super::{SignatureEncoding, SignatureError, SignatureFormat, headers_and_body};

/// Header that carries GitHub's signature, in lowercase as [`TriggerPayload::headers`] stores it.
pub const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";

const FORMAT: SignatureFormat<'static> = SignatureFormat {
    header: GITHUB_SIGNATURE_HEADER,
    prefix: "sha256=",
    encoding: SignatureEncoding::Hex,
};

/// Verifies GitHub's `X-Hub-Signature-256` header against the raw request body.
///
/// # Errors
///
/// - [`SignatureError::MissingHeader`] when the header is absent.
/// - [`SignatureError::MalformedHeader`] when it is not `sha256=` followed by 64 hex digits.
/// - [`SignatureError::Mismatch`] when the signature does not match.
/// - [`SignatureError::EmptySecret`] when `secret` is empty.
pub fn verify_github(
    secret: impl AsRef<[u8]>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<(), SignatureError> {
    FORMAT.verify(secret.as_ref(), headers, &[body])
}

/// Verifies GitHub's signature on a trigger payload's headers and raw body.
///
/// # Errors
///
/// Returns the errors of [`verify_github`].
pub fn verify_github_payload(
    secret: impl AsRef<[u8]>,
    payload: &TriggerPayload,
) -> Result<(), SignatureError> {
    let (headers, body) = headers_and_body(payload);
    verify_github(secret, headers, body)
}

/// Signs `body` as GitHub does and returns the `X-Hub-Signature-256` header value.
pub fn sign_github(secret: impl AsRef<[u8]>, body: &[u8]) -> String {
    FORMAT.sign(secret.as_ref(), &[body])
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    /// Secret of the example in GitHub's "Validating webhook deliveries" guide.
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    const ESCAPED_SECRET: &str = "gh_test_secret";
    /// JSON with escapes (`\u00e9`, `\/`) and a float written `1.0`, which a parser and a
    /// serializer do not reproduce byte for byte.
    const ESCAPED_BODY_BASE64: &str =
        "eyJhY3Rpb24iOiJvcGVuZWQiLCJudW1iZXIiOjcsIm5vdGUiOiJjYWZcdTAwZTkgXC8geCIsInNjb3JlIjoxLjB9";
    const ESCAPED_SIGNATURE: &str =
        "sha256=707062c1e54ac6babb9c0be43ee63095b3c6c242d6f58267b65a497011cab120";
    /// Signature of the same JSON serialized again by `serde_json`: keys sorted, `é` unescaped.
    const RESERIALIZED_SIGNATURE: &str =
        "sha256=4c282de2bffc7eb99c50ba2cf138226aa921fbc0a10d23325208fde461fa1aa8";
    const RESERIALIZED_BODY: &str =
        r#"{"action":"opened","note":"café / x","number":7,"score":1.0}"#;

    fn headers(name: &str, value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(name.to_owned(), value.to_owned())])
    }

    fn escaped_body() -> Vec<u8> {
        BASE64.decode(ESCAPED_BODY_BASE64).expect("valid base64")
    }

    #[test]
    fn github_accepts_documentation_vector() {
        let headers = headers("X-Hub-Signature-256", DOC_SIGNATURE);

        let result = verify_github(DOC_SECRET, &headers, DOC_BODY);

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn github_accepts_lowercase_header_name() {
        let headers = headers("x-hub-signature-256", DOC_SIGNATURE);

        let result = verify_github(DOC_SECRET, &headers, DOC_BODY);

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn github_accepts_signature_over_escaped_json_bytes() {
        let headers = headers("X-Hub-Signature-256", ESCAPED_SIGNATURE);

        let result = verify_github(ESCAPED_SECRET, &headers, &escaped_body());

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn github_rejects_signature_of_reserialized_body() {
        let headers = headers("X-Hub-Signature-256", RESERIALIZED_SIGNATURE);

        let result = verify_github(ESCAPED_SECRET, &headers, &escaped_body());

        assert_eq!(
            result,
            Err(SignatureError::Mismatch {
                header: GITHUB_SIGNATURE_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn reserialized_fixture_signs_serde_json_output() {
        let value: serde_json::Value = serde_json::from_slice(&escaped_body()).expect("valid JSON");

        assert_eq!(
            sign_github(ESCAPED_SECRET, RESERIALIZED_BODY.as_bytes()),
            RESERIALIZED_SIGNATURE
        );
        assert_ne!(RESERIALIZED_BODY.as_bytes(), escaped_body());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(RESERIALIZED_BODY).expect("valid JSON"),
            value
        );
    }

    #[test]
    fn sign_github_reproduces_documentation_vector() {
        assert_eq!(sign_github(DOC_SECRET, DOC_BODY), DOC_SIGNATURE);
    }

    #[test]
    fn github_accepts_uppercase_hex() {
        let headers = headers(
            "x-hub-signature-256",
            &DOC_SIGNATURE.replace("ea0eb", "EA0EB"),
        );

        let result = verify_github(DOC_SECRET, &headers, DOC_BODY);

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn github_rejects_changed_body() {
        let headers = headers("x-hub-signature-256", DOC_SIGNATURE);

        let result = verify_github(DOC_SECRET, &headers, b"Hello, World?");

        assert!(
            matches!(result, Err(SignatureError::Mismatch { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn github_rejects_missing_prefix() {
        let headers = headers(
            "x-hub-signature-256",
            DOC_SIGNATURE.trim_start_matches("sha256="),
        );

        let error = verify_github(DOC_SECRET, &headers, DOC_BODY).expect_err("no prefix");

        assert!(
            matches!(error, SignatureError::MalformedHeader { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("expected `sha256=`"), "{error}");
    }

    #[test]
    fn github_rejects_non_hex_signature() {
        let headers = headers("x-hub-signature-256", "sha256=not-hex");

        let error = verify_github(DOC_SECRET, &headers, DOC_BODY).expect_err("not hex");

        assert!(error.to_string().contains("not valid hex"), "{error}");
    }

    #[test]
    fn github_rejects_truncated_signature() {
        let headers = headers(
            "x-hub-signature-256",
            &DOC_SIGNATURE[..DOC_SIGNATURE.len() - 2],
        );

        let error = verify_github(DOC_SECRET, &headers, DOC_BODY).expect_err("31 bytes");

        assert_eq!(
            error,
            SignatureError::MalformedHeader {
                header: GITHUB_SIGNATURE_HEADER.to_owned(),
                reason: "the signature is 31 bytes long, but an HMAC-SHA256 is 32 bytes".to_owned(),
            }
        );
    }

    #[test]
    fn github_rejects_sha1_length_signature() {
        let headers = headers(
            "x-hub-signature-256",
            "sha256=0123456789abcdef0123456789abcdef01234567",
        );

        let error = verify_github(DOC_SECRET, &headers, DOC_BODY).expect_err("20 bytes");

        assert!(error.to_string().contains("is 20 bytes long"), "{error}");
    }

    #[test]
    fn github_payload_verification_reads_raw_body() {
        let mut payload = TriggerPayload::default();
        payload.raw_body.data = escaped_body();
        payload.headers.insert(
            GITHUB_SIGNATURE_HEADER.to_owned(),
            ESCAPED_SIGNATURE.to_owned(),
        );

        let result = verify_github_payload(ESCAPED_SECRET, &payload);

        assert_eq!(result, Ok(()));
    }
}
