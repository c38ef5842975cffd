//! The `pull_request` event, which GitHub sends when a pull request is opened, edited, closed,
//! reopened or changed in other ways: its summary and the open count kept per repository.

use serde::{Deserialize, Serialize};

use crate::delivery::{Account, Repository};

/// Value of `X-GitHub-Event` for pull requests.
pub(crate) const PULL_REQUEST_EVENT: &str = "pull_request";

/// A `pull_request` delivery, with the fields this integration reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PullRequestEvent {
    /// The action, such as `opened`, `closed`, `reopened` or `synchronize`.
    pub(crate) action: String,
    /// The pull request number in its repository.
    pub(crate) number: u64,
    /// The pull request after the action.
    pub(crate) pull_request: PullRequest,
    /// Repository the pull request targets.
    pub(crate) repository: Repository,
}

/// A pull request as the delivery describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PullRequest {
    /// Title.
    pub(crate) title: String,
    /// `open` or `closed`.
    pub(crate) state: String,
    /// Author of the pull request.
    pub(crate) user: Account,
    /// Branch with the changes.
    pub(crate) head: BranchTip,
    /// Branch the changes go into.
    pub(crate) base: BranchTip,
    /// Whether it was merged. GitHub's webhook schema allows `null`, read here as not merged.
    #[serde(default)]
    pub(crate) merged: Option<bool>,
    /// Whether it is a draft.
    #[serde(default)]
    pub(crate) draft: Option<bool>,
    /// Web page of the pull request.
    pub(crate) html_url: String,
}

/// One side of a pull request: a branch and the commit it pointed to.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BranchTip {
    /// Branch name, without `refs/heads/`.
    #[serde(rename = "ref")]
    pub(crate) branch: String,
    /// Commit SHA-1.
    pub(crate) sha: String,
}

/// Summary of a pull request event, as the "Pull Request Events" flow reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PullRequestSummary {
    /// `owner/name` of the repository.
    pub(crate) repository: String,
    /// The action, such as `opened`.
    pub(crate) action: String,
    /// The pull request number.
    pub(crate) number: u64,
    /// Title.
    pub(crate) title: String,
    /// `open` or `closed`.
    pub(crate) state: String,
    /// Username of the pull request's author.
    pub(crate) author: String,
    /// Branch with the changes.
    pub(crate) head_ref: String,
    /// Commit at the tip of the head branch.
    pub(crate) head_sha: String,
    /// Branch the changes go into.
    pub(crate) base_ref: String,
    /// Whether it was merged.
    pub(crate) merged: bool,
    /// Whether it is a draft.
    pub(crate) draft: bool,
    /// Web page of the pull request.
    pub(crate) url: String,
}

/// The result of a "Pull Request Events" execution.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PullRequestResult {
    /// Always `pull_request`.
    pub(crate) event: &'static str,
    /// GUID from `X-GitHub-Delivery`.
    pub(crate) delivery_id: Option<String>,
    /// Summary of the event.
    #[serde(flatten)]
    pub(crate) pull_request: PullRequestSummary,
    /// Open pull requests of the repository after this action.
    pub(crate) open_pull_requests: u64,
}

impl PullRequestEvent {
    /// Summarizes the event.
    pub(crate) fn summary(&self) -> PullRequestSummary {
        let pull_request = &self.pull_request;
        PullRequestSummary {
            repository: self.repository.full_name.clone(),
            action: self.action.clone(),
            number: self.number,
            title: pull_request.title.clone(),
            state: pull_request.state.clone(),
            author: pull_request.user.login.clone(),
            head_ref: pull_request.head.branch.clone(),
            head_sha: pull_request.head.sha.clone(),
            base_ref: pull_request.base.branch.clone(),
            merged: pull_request.merged.unwrap_or(false),
            draft: pull_request.draft.unwrap_or(false),
            url: pull_request.html_url.clone(),
        }
    }
}

impl PullRequestSummary {
    /// Describes the event in one line for the execution log.
    pub(crate) fn describe(&self, open_pull_requests: u64) -> String {
        let action = if self.action == "closed" && self.merged {
            "merged"
        } else {
            self.action.as_str()
        };
        format!(
            "pull request #{} of {} {action}: \"{}\" ({} into {}, by {}); {open_pull_requests} open",
            self.number, self.repository, self.title, self.head_ref, self.base_ref, self.author
        )
    }
}

/// Returns the instance state key of a repository's open pull request count.
pub(crate) fn open_count_key(repository: &str) -> String {
    format!("openPullRequests:{repository}")
}

/// Returns the number of open pull requests after `action`, given `open` before it.
///
/// `opened` and `reopened` add one and `closed` removes one, merged or not. Other actions, such
/// as `edited`, `synchronize` or `labeled`, leave the count unchanged.
pub(crate) fn open_count_after(open: u64, action: &str) -> u64 {
    match action {
        "opened" | "reopened" => open.saturating_add(1),
        // NOTE: counting starts when the webhook is set up. Closing a pull request opened before
        // then would take the count below zero, so it stays at zero instead.
        "closed" => open.saturating_sub(1),
        _ => open,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const OPENED: &str = include_str!("../tests/fixtures/pull_request_opened.json");

    fn fixture() -> Value {
        serde_json::from_str(OPENED).expect("the fixture is JSON")
    }

    fn summarize(value: Value) -> PullRequestSummary {
        serde_json::from_value::<PullRequestEvent>(value)
            .expect("a pull_request event")
            .summary()
    }

    /// The fixture changed into the delivery GitHub sends when the pull request is merged.
    fn merged() -> Value {
        let mut value = fixture();
        value["action"] = json!("closed");
        value["pull_request"]["state"] = json!("closed");
        value["pull_request"]["merged"] = json!(true);
        value
    }

    #[test]
    fn opened_fixture_summary_has_number_title_and_author() {
        let summary = summarize(fixture());

        assert_eq!(summary.repository, "Codertocat/Hello-World");
        assert_eq!(summary.action, "opened");
        assert_eq!(summary.number, 7);
        assert_eq!(
            summary.title,
            "Count accented words like “café” in the README"
        );
        assert_eq!(summary.state, "open");
        assert_eq!(summary.author, "zoemueller");
        assert_eq!(
            summary.url,
            "https://github.com/Codertocat/Hello-World/pull/7"
        );
    }

    #[test]
    fn opened_fixture_summary_has_head_and_base() {
        let summary = summarize(fixture());

        assert_eq!(summary.head_ref, "fix-word-count");
        assert_eq!(summary.head_sha, "c784bd787a4b7d098472275e0a2ca16bf3057493");
        assert_eq!(summary.base_ref, "main");
        assert!(!summary.merged);
        assert!(!summary.draft);
    }

    #[test]
    fn null_merged_and_draft_read_as_false() {
        let mut value = fixture();
        value["pull_request"]["merged"] = Value::Null;
        value["pull_request"]["draft"] = Value::Null;

        let summary = summarize(value);

        assert!(!summary.merged);
        assert!(!summary.draft);
    }

    #[test]
    fn merged_pull_request_is_closed_and_merged() {
        let summary = summarize(merged());

        assert_eq!(summary.action, "closed");
        assert_eq!(summary.state, "closed");
        assert!(summary.merged);
    }

    #[test]
    fn description_names_number_branches_and_open_count() {
        let summary = summarize(fixture());

        assert_eq!(
            summary.describe(1),
            "pull request #7 of Codertocat/Hello-World opened: \
             \"Count accented words like “café” in the README\" (fix-word-count into main, by zoemueller); 1 open"
        );
    }

    #[test]
    fn description_says_merged_for_a_merged_close() {
        let summary = summarize(merged());

        assert!(
            summary.describe(0).contains(" merged: "),
            "{}",
            summary.describe(0)
        );
    }

    #[test]
    fn open_count_follows_actions() {
        let cases = [
            (0, "opened", 1),
            (1, "reopened", 2),
            (2, "closed", 1),
            (1, "synchronize", 1),
            (1, "edited", 1),
            (0, "closed", 0),
            (u64::MAX, "opened", u64::MAX),
        ];
        for (before, action, after) in cases {
            assert_eq!(
                open_count_after(before, action),
                after,
                "{before} then {action}"
            );
        }
    }
}
