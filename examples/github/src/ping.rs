//! The `ping` event, which GitHub sends once when a webhook is created.

use serde::{Deserialize, Serialize};

use crate::delivery::Repository;

/// A `ping` delivery, with the fields this integration reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PingEvent {
    /// A random GitHub aphorism.
    pub(crate) zen: String,
    /// Id of the webhook that was created.
    pub(crate) hook_id: u64,
    /// The webhook's settings.
    pub(crate) hook: Hook,
    /// The repository of a repository webhook; organization and app webhooks have none.
    #[serde(default)]
    pub(crate) repository: Option<Repository>,
}

/// The settings of a webhook.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Hook {
    /// Events the webhook sends; `*` stands for every event.
    #[serde(default)]
    pub(crate) events: Vec<String>,
}

/// The result of an execution started by a ping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PingResult {
    /// Always `ping`.
    pub(crate) event: &'static str,
    /// GUID from `X-GitHub-Delivery`.
    pub(crate) delivery_id: Option<String>,
    /// Id of the webhook.
    pub(crate) hook_id: u64,
    /// Events the webhook sends.
    pub(crate) events: Vec<String>,
    /// `owner/name` of the repository, for repository webhooks.
    pub(crate) repository: Option<String>,
    /// The aphorism GitHub sent.
    pub(crate) zen: String,
}

impl Hook {
    /// Returns whether the webhook sends `event`, itself or through `*`.
    pub(crate) fn sends(&self, event: &str) -> bool {
        self.events.iter().any(|name| name == event || name == "*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PING: &str = include_str!("../tests/fixtures/ping.json");

    fn fixture() -> PingEvent {
        serde_json::from_str(PING).expect("a ping event")
    }

    #[test]
    fn fixture_has_hook_id_and_repository() {
        let ping = fixture();

        assert_eq!(ping.hook_id, 468_193_275);
        assert_eq!(
            ping.repository
                .map(|repository| repository.full_name)
                .as_deref(),
            Some("Codertocat/Hello-World")
        );
    }

    #[test]
    fn hook_sends_listed_events_only() {
        let hook = fixture().hook;

        assert!(hook.sends("push"));
        assert!(hook.sends("pull_request"));
        assert!(!hook.sends("issues"));
    }

    #[test]
    fn wildcard_hook_sends_every_event() {
        let hook = Hook {
            events: vec!["*".to_owned()],
        };

        assert!(hook.sends("issues"));
    }

    #[test]
    fn organization_ping_without_repository_is_accepted() {
        let mut value: serde_json::Value = serde_json::from_str(PING).expect("JSON");
        value
            .as_object_mut()
            .expect("an object")
            .remove("repository");

        let ping: PingEvent = serde_json::from_value(value).expect("a ping event");

        assert!(ping.repository.is_none());
    }
}
