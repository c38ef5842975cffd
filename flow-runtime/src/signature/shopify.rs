//! Shopify webhooks: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the body>`.

use std::collections::BTreeMap;

use flow_core::TriggerPayload;

use super::{SignatureEncoding, SignatureError, SignatureFormat, headers_and_body};

/// Header that carries Shopify's signature, in lowercase as [`TriggerPayload::headers`] stores it.
pub const SHOPIFY_SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";

const FORMAT: SignatureFormat<'static> = SignatureFormat {
    header: SHOPIFY_SIGNATURE_HEADER,
    prefix: "",
    encoding: SignatureEncoding::Base64,
};

/// Verifies Shopify's `X-Shopify-Hmac-Sha256` header against the raw request body.
///
/// `secret` is the app's client secret.
///
/// # Errors
///
/// - [`SignatureError::MissingHeader`] when the header is absent.
/// - [`SignatureError::MalformedHeader`] when it is not the base64 encoding of 32 bytes.
/// - [`SignatureError::Mismatch`] when the signature does not match.
/// - [`SignatureError::EmptySecret`] when `secret` is empty.
pub fn verify_shopify(
    secret: impl AsRef<[u8]>,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> Result<(), SignatureError> {
    FORMAT.verify(secret.as_ref(), headers, &[body])
}

/// Verifies Shopify's signature on a trigger payload's headers and raw body.
///
/// # Errors
///
/// Returns the errors of [`verify_shopify`].
pub fn verify_shopify_payload(
    secret: impl AsRef<[u8]>,
    payload: &TriggerPayload,
) -> Result<(), SignatureError> {
    let (headers, body) = headers_and_body(payload);
    verify_shopify(secret, headers, body)
}

/// Signs `body` as Shopify does and returns the `X-Shopify-Hmac-Sha256` header value.
pub fn sign_shopify(secret: impl AsRef<[u8]>, body: &[u8]) -> String {
    FORMAT.sign(secret.as_ref(), &[body])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signed with Python:
    /// `base64.b64encode(hmac.new(b"shpss_test_secret", body, hashlib.sha256).digest())`.
    const SECRET: &str = "shpss_test_secret";
    const BODY: &[u8] =
        br#"{"id":820982911946154508,"email":"jon@example.com","total_price":"19.99"}"#;
    const SIGNATURE: &str = "jFZUa5YQ9H56pncAyk0wNDl771VbkAgUq7Er8t335PU=";

    fn headers(name: &str, value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn shopify_accepts_python_computed_signature() {
        let headers = headers("X-Shopify-Hmac-Sha256", SIGNATURE);

        let result = verify_shopify(SECRET, &headers, BODY);

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn sign_shopify_reproduces_python_computed_signature() {
        assert_eq!(sign_shopify(SECRET, BODY), SIGNATURE);
    }

    #[test]
    fn shopify_accepts_request_signed_by_sign_shopify() {
        let body = br#"{"id":1,"note":"caf\u00e9"}"#;
        let headers = headers(
            SHOPIFY_SIGNATURE_HEADER,
            &sign_shopify("another_secret", body),
        );

        let result = verify_shopify("another_secret", &headers, body);

        assert_eq!(result, Ok(()));
    }

    #[test]
    fn shopify_rejects_changed_body() {
        let headers = headers(SHOPIFY_SIGNATURE_HEADER, SIGNATURE);

        let result = verify_shopify(
            SECRET,
            &headers,
            br#"{"id":820982911946154508,"email":"jon@example.com","total_price":"0.01"}"#,
        );

        assert_eq!(
            result,
            Err(SignatureError::Mismatch {
                header: SHOPIFY_SIGNATURE_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn shopify_rejects_hex_signature() {
        let hex_signature = "8c56546b9610f47e7aa67700ca4d3034397bef555b900814abb12bf2ddf7e4f5";
        let headers = headers(SHOPIFY_SIGNATURE_HEADER, hex_signature);

        let error = verify_shopify(SECRET, &headers, BODY)
            .expect_err("64 base64 digits decode to 48 bytes");

        assert!(error.to_string().contains("is 48 bytes long"), "{error}");
    }

    #[test]
    fn shopify_rejects_invalid_base64() {
        let headers = headers(SHOPIFY_SIGNATURE_HEADER, "not base64!");

        let error = verify_shopify(SECRET, &headers, BODY).expect_err("invalid base64");

        assert!(error.to_string().contains("not valid base64"), "{error}");
    }

    #[test]
    fn shopify_rejects_missing_header() {
        let result = verify_shopify(SECRET, &BTreeMap::new(), BODY);

        assert_eq!(
            result,
            Err(SignatureError::MissingHeader {
                header: SHOPIFY_SIGNATURE_HEADER.to_owned()
            })
        );
    }

    #[test]
    fn shopify_payload_verification_reads_raw_body() {
        let mut payload = TriggerPayload::default();
        payload.raw_body.data = BODY.to_vec();
        payload.headers = headers(SHOPIFY_SIGNATURE_HEADER, SIGNATURE);

        let result = verify_shopify_payload(SECRET, &payload);

        assert_eq!(result, Ok(()));
    }
}
