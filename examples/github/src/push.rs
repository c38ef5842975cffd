//! The `push` event, which GitHub sends when commits are pushed and when a branch or tag is
//! created or deleted: its summary and the totals kept per repository.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::delivery::Repository;

/// Value of `X-GitHub-Event` for pushes.
pub(crate) const PUSH_EVENT: &str = "push";

/// A `push` delivery, with the fields this integration reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PushEvent {
    /// The full ref that was pushed, such as `refs/heads/main` or `refs/tags/v1.0`.
    #[serde(rename = "ref")]
    pub(crate) git_ref: String,
    /// Whether the push created the ref.
    #[serde(default)]
    pub(crate) created: bool,
    /// Whether the push deleted the ref.
    #[serde(default)]
    pub(crate) deleted: bool,
    /// Whether the push was a force push.
    #[serde(default)]
    pub(crate) forced: bool,
    /// Web page comparing the ref before and after the push.
    #[serde(default)]
    pub(crate) compare: Option<String>,
    /// The pushed commits; only their number is read.
    #[serde(default)]
    pub(crate) commits: Vec<IgnoredAny>,
    /// The newest commit after the push. GitHub sends `null` when the push deleted the ref.
    #[serde(default)]
    pub(crate) head_commit: Option<Commit>,
    /// Repository the ref belongs to.
    pub(crate) repository: Repository,
    /// Who pushed.
    pub(crate) pusher: Pusher,
}

/// A commit as push deliveries describe it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Commit {
    /// Full SHA-1, 40 hex digits.
    pub(crate) id: String,
    /// Commit message, subject line and body.
    pub(crate) message: String,
    /// Author as recorded in the commit.
    pub(crate) author: CommitAuthor,
}

/// The author of a commit.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CommitAuthor {
    /// Name from the commit, which need not be a GitHub username.
    pub(crate) name: String,
}

/// The account that pushed.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Pusher {
    /// GitHub username.
    pub(crate) name: String,
}

/// Summary of a push, as the "Push Events" flow reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushSummary {
    /// `owner/name` of the repository.
    pub(crate) repository: String,
    /// The full ref, such as `refs/heads/main`.
    #[serde(rename = "ref")]
    pub(crate) git_ref: String,
    /// Branch name when the ref is a branch.
    pub(crate) branch: Option<String>,
    /// Tag name when the ref is a tag.
    pub(crate) tag: Option<String>,
    /// Whether the push created the ref.
    pub(crate) created: bool,
    /// Whether the push deleted the ref.
    pub(crate) deleted: bool,
    /// Whether the push was a force push.
    pub(crate) forced: bool,
    /// Number of commits in the delivery's `commits` list.
    pub(crate) commit_count: usize,
    /// The newest commit, absent when the push deleted the ref.
    pub(crate) head_commit: Option<HeadCommit>,
    /// GitHub username of the pusher.
    pub(crate) pusher: String,
    /// Web page comparing the ref before and after the push.
    pub(crate) compare_url: Option<String>,
}

/// The newest commit of a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HeadCommit {
    /// Full SHA-1.
    pub(crate) id: String,
    /// Whole commit message.
    pub(crate) message: String,
    /// Author name from the commit.
    pub(crate) author: String,
}

/// Pushes seen for one repository, kept in instance state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushTotals {
    /// Pushes recorded, ref deletions included.
    pub(crate) push_count: u64,
    /// Head commit of the latest push that had one.
    pub(crate) last_head_commit: Option<String>,
}

/// The result of a "Push Events" execution.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PushResult {
    /// Always `push`.
    pub(crate) event: &'static str,
    /// GUID from `X-GitHub-Delivery`.
    pub(crate) delivery_id: Option<String>,
    /// Summary of the push.
    #[serde(flatten)]
    pub(crate) push: PushSummary,
    /// Totals of the repository, this push included.
    pub(crate) repository_totals: PushTotals,
}

impl PushEvent {
    /// Summarizes the push.
    pub(crate) fn summary(&self) -> PushSummary {
        PushSummary {
            repository: self.repository.full_name.clone(),
            git_ref: self.git_ref.clone(),
            branch: self.git_ref.strip_prefix("refs/heads/").map(str::to_owned),
            tag: self.git_ref.strip_prefix("refs/tags/").map(str::to_owned),
            created: self.created,
            deleted: self.deleted,
            forced: self.forced,
            commit_count: self.commits.len(),
            head_commit: self.head_commit.as_ref().map(|commit| HeadCommit {
                id: commit.id.clone(),
                message: commit.message.clone(),
                author: commit.author.name.clone(),
            }),
            pusher: self.pusher.name.clone(),
            compare_url: self.compare.clone(),
        }
    }
}

impl PushSummary {
    /// Describes the push in one line for the execution log.
    pub(crate) fn describe(&self) -> String {
        let target = match (&self.branch, &self.tag) {
            (Some(branch), _) => format!("branch {branch}"),
            (None, Some(tag)) => format!("tag {tag}"),
            (None, None) => self.git_ref.clone(),
        };
        if self.deleted {
            return format!("{} deleted {target} of {}", self.pusher, self.repository);
        }

        let commits = match self.commit_count {
            1 => "1 commit".to_owned(),
            count => format!("{count} commits"),
        };
        let force = if self.forced { "force-" } else { "" };
        let head = match &self.head_commit {
            Some(commit) => format!(
                ", head {} \"{}\"",
                short_id(&commit.id),
                subject(&commit.message)
            ),
            None => String::new(),
        };
        format!(
            "{} {force}pushed {commits} to {target} of {}{head}",
            self.pusher, self.repository
        )
    }
}

impl PushTotals {
    /// Returns the instance state key of a repository's totals.
    pub(crate) fn state_key(repository: &str) -> String {
        format!("pushes:{repository}")
    }

    /// Counts one more push and keeps its head commit, if it has one.
    pub(crate) fn record(&mut self, push: &PushSummary) {
        self.push_count = self.push_count.saturating_add(1);
        if let Some(head) = &push.head_commit {
            self.last_head_commit = Some(head.id.clone());
        }
    }
}

/// Returns the first 7 characters of a commit id, as GitHub shows it.
fn short_id(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

/// Returns the first line of a commit message.
fn subject(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const PUSH: &str = include_str!("../tests/fixtures/push.json");

    fn fixture() -> Value {
        serde_json::from_str(PUSH).expect("the fixture is JSON")
    }

    fn summarize(value: Value) -> PushSummary {
        serde_json::from_value::<PushEvent>(value)
            .expect("a push event")
            .summary()
    }

    /// The fixture changed into the delivery GitHub sends when a branch is deleted.
    fn branch_deletion() -> Value {
        let mut value = fixture();
        value["after"] = json!("0000000000000000000000000000000000000000");
        value["deleted"] = json!(true);
        value["commits"] = json!([]);
        value["head_commit"] = Value::Null;
        value
    }

    #[test]
    fn fixture_summary_names_repository_branch_and_pusher() {
        let summary = summarize(fixture());

        assert_eq!(summary.repository, "Codertocat/Hello-World");
        assert_eq!(summary.git_ref, "refs/heads/main");
        assert_eq!(summary.branch.as_deref(), Some("main"));
        assert_eq!(summary.tag, None);
        assert_eq!(summary.pusher, "Codertocat");
    }

    #[test]
    fn fixture_summary_counts_commits_and_keeps_head_commit() {
        let summary = summarize(fixture());

        assert_eq!(summary.commit_count, 2);
        let head = summary.head_commit.expect("the fixture has a head commit");
        assert_eq!(head.id, "c784bd787a4b7d098472275e0a2ca16bf3057493");
        assert_eq!(head.author, "Zoë Müller");
        assert!(
            head.message
                .starts_with("Fix the naïve word count in README ✨\n\n"),
            "{}",
            head.message
        );
    }

    #[test]
    fn tag_push_has_tag_and_no_branch() {
        let mut value = fixture();
        value["ref"] = json!("refs/tags/v1.2.0");

        let summary = summarize(value);

        assert_eq!(summary.tag.as_deref(), Some("v1.2.0"));
        assert_eq!(summary.branch, None);
    }

    #[test]
    fn branch_deletion_has_no_head_commit() {
        let summary = summarize(branch_deletion());

        assert!(summary.deleted);
        assert_eq!(summary.commit_count, 0);
        assert_eq!(summary.head_commit, None);
    }

    #[test]
    fn missing_head_commit_field_is_accepted() {
        let mut value = fixture();
        value
            .as_object_mut()
            .expect("an object")
            .remove("head_commit");

        let summary = summarize(value);

        assert_eq!(summary.head_commit, None);
    }

    #[test]
    fn description_gives_count_short_id_and_subject() {
        let summary = summarize(fixture());

        assert_eq!(
            summary.describe(),
            "Codertocat pushed 2 commits to branch main of Codertocat/Hello-World, \
             head c784bd7 \"Fix the naïve word count in README ✨\""
        );
    }

    #[test]
    fn description_of_branch_deletion_names_the_branch() {
        let summary = summarize(branch_deletion());

        assert_eq!(
            summary.describe(),
            "Codertocat deleted branch main of Codertocat/Hello-World"
        );
    }

    #[test]
    fn description_marks_force_push() {
        let mut value = fixture();
        value["forced"] = json!(true);

        let summary = summarize(value);

        assert!(
            summary
                .describe()
                .starts_with("Codertocat force-pushed 2 commits"),
            "{}",
            summary.describe()
        );
    }

    #[test]
    fn totals_count_pushes_and_keep_latest_head() {
        let mut totals = PushTotals::default();

        totals.record(&summarize(fixture()));
        totals.record(&summarize(fixture()));

        assert_eq!(totals.push_count, 2);
        assert_eq!(
            totals.last_head_commit.as_deref(),
            Some("c784bd787a4b7d098472275e0a2ca16bf3057493")
        );
    }

    #[test]
    fn totals_keep_previous_head_after_branch_deletion() {
        let mut totals = PushTotals::default();

        totals.record(&summarize(fixture()));
        totals.record(&summarize(branch_deletion()));

        assert_eq!(totals.push_count, 2);
        assert_eq!(
            totals.last_head_commit.as_deref(),
            Some("c784bd787a4b7d098472275e0a2ca16bf3057493")
        );
    }

    #[test]
    fn result_serializes_summary_fields_at_top_level() {
        let result = PushResult {
            event: PUSH_EVENT,
            delivery_id: Some("a9b37ab5-3fed-45aa-8ca1-20676b585303".to_owned()),
            push: summarize(fixture()),
            repository_totals: PushTotals::default(),
        };

        let value = serde_json::to_value(result).expect("serializes");

        assert_eq!(value["event"], json!("push"));
        assert_eq!(value["ref"], json!("refs/heads/main"));
        assert_eq!(value["commitCount"], json!(2));
        assert_eq!(value["headCommit"]["author"], json!("Zoë Müller"));
        assert_eq!(value["repositoryTotals"]["pushCount"], json!(0));
    }
}
