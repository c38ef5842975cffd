//! Classification of request bodies by media type.

/// How a body of a given media type is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `application/json` and every `+json` type.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`.
    Multipart,
    /// Every `text/*` type.
    Text,
    /// Anything else, and no content type at all: the bytes as they are.
    Bytes,
}

impl MediaKind {
    /// Classifies a `Content-Type` value, ignoring case and parameters.
    pub fn of(content_type: Option<&str>) -> Self {
        let Some(content_type) = content_type else {
            return Self::Bytes;
        };
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let Some((kind, subtype)) = essence.split_once('/') else {
            return Self::Bytes;
        };
        let is = |text: &str, name: &str| text.eq_ignore_ascii_case(name);
        let json_suffix = subtype.get(subtype.len().saturating_sub(5)..).is_some_and(|end| is(end, "+json"));
        if (is(kind, "application") && is(subtype, "json")) || json_suffix {
            Self::Json
        } else if is(kind, "application") && is(subtype, "x-www-form-urlencoded") {
            Self::Form
        } else if is(kind, "multipart") && is(subtype, "form-data") {
            Self::Multipart
        } else if is(kind, "text") {
            Self::Text
        } else {
            Self::Bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_any_case_and_parameters() {
        assert_eq!(MediaKind::of(Some("Application/JSON; charset=utf-8")), MediaKind::Json);
    }

    #[test]
    fn suffix_json_types_are_json() {
        assert_eq!(MediaKind::of(Some("application/vnd.api+json")), MediaKind::Json);
        assert_eq!(MediaKind::of(Some("application/cloudevents+json")), MediaKind::Json);
    }

    #[test]
    fn every_kind_matches_in_any_case() {
        assert_eq!(MediaKind::of(Some("Application/Vnd.Api+JSON")), MediaKind::Json);
        assert_eq!(MediaKind::of(Some("APPLICATION/X-WWW-FORM-URLENCODED")), MediaKind::Form);
        assert_eq!(MediaKind::of(Some("Multipart/Form-Data; boundary=x")), MediaKind::Multipart);
        assert_eq!(MediaKind::of(Some("TEXT/Plain")), MediaKind::Text);
    }

    #[test]
    fn multibyte_subtype_is_bytes() {
        assert_eq!(MediaKind::of(Some("application/\u{20ac}json")), MediaKind::Bytes);
        assert_eq!(MediaKind::of(Some("application/x\u{20ac}")), MediaKind::Bytes);
    }

    #[test]
    fn form_and_multipart_are_recognized() {
        assert_eq!(MediaKind::of(Some("application/x-www-form-urlencoded")), MediaKind::Form);
        assert_eq!(MediaKind::of(Some("multipart/form-data; boundary=x")), MediaKind::Multipart);
    }

    #[test]
    fn text_types_are_text() {
        assert_eq!(MediaKind::of(Some("text/csv")), MediaKind::Text);
    }

    #[test]
    fn unknown_or_missing_types_are_bytes() {
        assert_eq!(MediaKind::of(Some("application/octet-stream")), MediaKind::Bytes);
        assert_eq!(MediaKind::of(Some("garbage")), MediaKind::Bytes);
        assert_eq!(MediaKind::of(None), MediaKind::Bytes);
    }
}
