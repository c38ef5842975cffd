//! HMAC-SHA256 of the body in a header that the sender chooses, with an optional prefix.

use std::collections::BTreeMap;

use flow_core::TriggerPayload;

use super::{SignatureEncoding, SignatureError, SignatureFormat, headers_and_body};

/// A verifier for senders that put an HMAC-SHA256 of the raw body in a header of their choice.
///
/// ```
/// use flow_runtime::signature::{HmacSha256Verifier, SignatureEncoding};
///
/// let verifier = HmacSha256Verifier::new("X-Hmac-Signature", SignatureEncoding::Hex)
///     .with_prefix("hmac-sha256-hex=");
/// let body = br#"{"id":"evt_123"}"#;
/// let headers = [("x-hmac-signature".to_owned(), verifier.sign("secret", body))].into();
///
/// assert_eq!(verifier.verify("secret", &headers, body), Ok(()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacSha256Verifier {
    header: String,
    encoding: SignatureEncoding,
    prefix: String,
}

impl HmacSha256Verifier {
    /// Creates a verifier that reads the signature from `header`, matched case-insensitively,
    /// with no prefix.
    pub fn new(header: impl Into<String>, encoding: SignatureEncoding) -> Self {
        Self {
            header: header.into(),
            encoding,
            prefix: String::new(),
        }
    }

    /// Sets the text that precedes the encoded signature, such as `sha256=`. The prefix is
    /// matched case-sensitively.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Verifies the configured header against the raw request body.
    ///
    /// # Errors
    ///
    /// - [`SignatureError::MissingHeader`] when the header is absent.
    /// - [`SignatureError::MalformedHeader`] when the value lacks the prefix or is not the
    ///   encoding of 32 bytes.
    /// - [`SignatureError::Mismatch`] when the signature does not match.
    /// - [`SignatureError::EmptySecret`] when `secret` is empty.
    pub fn verify(
        &self,
        secret: impl AsRef<[u8]>,
        headers: &BTreeMap<String, String>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        self.format().verify(secret.as_ref(), headers, &[body])
    }

    /// Verifies the configured header on a trigger payload's headers and raw body.
    ///
    /// # Errors
    ///
    /// Returns the errors of [`HmacSha256Verifier::verify`].
    pub fn verify_payload(
        &self,
        secret: impl AsRef<[u8]>,
        payload: &TriggerPayload,
    ) -> Result<(), SignatureError> {
        let (headers, body) = headers_and_body(payload);
        self.verify(secret, headers, body)
    }

    /// Signs `body` and returns the header value: the prefix, then the encoded HMAC-SHA256.
    pub fn sign(&self, secret: impl AsRef<[u8]>, body: &[u8]) -> String {
        self.format().sign(secret.as_ref(), &[body])
    }

    fn format(&self) -> SignatureFormat<'_> {
        SignatureFormat {
            header: &self.header,
            prefix: &self.prefix,
            encoding: self.encoding,
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    const PREFIXED_SECRET: &str = "easypost_test_secret";
    const PREFIXED_BODY_BASE64: &str =
        "eyJkZXNjcmlwdGlvbiI6InRyYWNrZXIudXBkYXRlZCIsImlkIjoiZXZ0XzEyMyJ9";
    const PREFIXED_SIGNATURE: &str =
        "hmac-sha256-hex=8873052f1cb626b368514b2de2fb9417d9c14f012ee4244e437ca8bb686b87f3";

    fn prefixed_verifier() -> HmacSha256Verifier {
        HmacSha256Verifier::new("X-Hmac-Signature", SignatureEncoding::Hex)
            .with_prefix("hmac-sha256-hex=")
    }

    fn prefixed_body() -> Vec<u8> {
        BASE64.decode(PREFIXED_BODY_BASE64).expect("valid base64")
    }

    fn headers(name: &str, value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn generic_accepts_prefixed_hex_in_lowercase_header() {
        let headers = headers("x-hmac-signature", PREFIXED_SIGNATURE);

        let result = prefixed_verifier().verify(PREFIXED_SECRET, &headers, &prefixed_body());

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn generic_sign_reproduces_prefixed_fixture() {
        assert_eq!(
            prefixed_verifier().sign(PREFIXED_SECRET, &prefixed_body()),
            PREFIXED_SIGNATURE
        );
    }

    #[test]
    fn generic_rejects_value_without_prefix() {
        let headers = headers(
            "x-hmac-signature",
            PREFIXED_SIGNATURE.trim_start_matches("hmac-sha256-hex="),
        );

        let error = prefixed_verifier()
            .verify(PREFIXED_SECRET, &headers, &prefixed_body())
            .expect_err("no prefix");

        assert_eq!(
            error,
            SignatureError::MalformedHeader {
                header: "X-Hmac-Signature".to_owned(),
                reason: "expected `hmac-sha256-hex=` followed by a hex HMAC-SHA256".to_owned(),
            }
        );
    }

    #[test]
    fn generic_rejects_wrong_secret() {
        let headers = headers("x-hmac-signature", PREFIXED_SIGNATURE);

        let result = prefixed_verifier().verify("other_secret", &headers, &prefixed_body());

        assert_eq!(
            result,
            Err(SignatureError::Mismatch {
                header: "X-Hmac-Signature".to_owned()
            })
        );
    }

    #[test]
    fn generic_rejects_missing_header() {
        let headers = headers("x-signature", PREFIXED_SIGNATURE);

        let result = prefixed_verifier().verify(PREFIXED_SECRET, &headers, &prefixed_body());

        assert_eq!(
            result,
            Err(SignatureError::MissingHeader {
                header: "X-Hmac-Signature".to_owned()
            })
        );
    }

    #[test]
    fn generic_base64_without_prefix_round_trips() {
        let verifier = HmacSha256Verifier::new("X-Signature", SignatureEncoding::Base64);
        let body = b"{\"amount\":100}";
        let headers = headers("x-signature", &verifier.sign("base64_secret", body));

        let result = verifier.verify("base64_secret", &headers, body);

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn generic_payload_verification_reads_raw_body() {
        let mut payload = TriggerPayload::default();
        payload.raw_body.data = prefixed_body();
        payload.headers = headers("x-hmac-signature", PREFIXED_SIGNATURE);

        let result = prefixed_verifier().verify_payload(PREFIXED_SECRET, &payload);

        assert_eq!(result, Ok(()));
    }
}
