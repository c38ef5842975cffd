//! Places flow-core's violations on the attribute's tokens.

use flow_core::Violation;

use crate::errors::{Errors, Site};
use crate::options::Options;

/// Places violations on the tokens of their keys.
pub(crate) struct Reporter<'a> {
    options: &'a Options,
    errors: &'a Errors,
    /// Keys that already carry a "conflicts with" error.
    marked: Vec<&'static str>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(options: &'a Options, errors: &'a Errors) -> Self {
        Self {
            options,
            errors,
            marked: Vec::new(),
        }
    }

    /// Reports a violation on its first key's tokens, and a "conflicts with" error on each
    /// other key's tokens the first time that key is involved.
    pub(crate) fn report(&mut self, violation: &Violation) {
        let Some((first, others)) = violation.keys.split_first() else {
            self.errors.at(Site::call_site(), &violation.message);
            return;
        };
        self.errors.at(site_of(first, self.options), &violation.message);
        for other in others {
            let Some(entry) = self.options.get(other) else { continue };
            if self.marked.contains(other) {
                continue;
            }
            self.marked.push(other);
            self.errors.at(
                entry.site,
                format!("`{other}` conflicts with `{first}`: {}", violation.message),
            );
        }
    }
}

/// Returns the tokens of `key`, else of its nearest written parent, else the attribute.
fn site_of(key: &str, options: &Options) -> Site {
    let mut path = key;
    loop {
        if let Some(entry) = options.get(path) {
            return entry.site;
        }
        match path.rsplit_once('.') {
            Some((parent, _)) => path = parent,
            None => return Site::call_site(),
        }
    }
}
