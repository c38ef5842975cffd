//! The error collector: every check records its errors here, so one build reports them all.

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::{Punct, Spacing, Span, TokenStream, TokenTree};
use quote::ToTokens;

/// A range of source tokens that an error points at, from `start` through `end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site {
    start: Span,
    end: Span,
}

impl Site {
    /// Returns the `#[flow(...)]` attribute itself, for errors about missing options.
    pub(crate) fn call_site() -> Self {
        Self::from(Span::call_site())
    }

    /// Returns the range from the first to the last token of `tokens`.
    pub(crate) fn of(tokens: &impl ToTokens) -> Self {
        let mut trees = tokens.to_token_stream().into_iter();
        let Some(first) = trees.next() else {
            return Self::call_site();
        };
        let end = trees.last().unwrap_or_else(|| first.clone());
        Self {
            start: first.span(),
            end: end.span(),
        }
    }

    /// Returns the range from the start of `self` through the end of `other`.
    pub(crate) fn through(self, other: Self) -> Self {
        Self {
            start: self.start,
            end: other.end,
        }
    }

    /// Creates an error that underlines this range.
    pub(crate) fn error(self, message: impl Display) -> syn::Error {
        // `syn::Error::new_spanned` reads only the first and last token spans, which is how a
        // stable proc macro marks a range that spans several tokens.
        let mut start = Punct::new('<', Spacing::Alone);
        start.set_span(self.start);
        let mut end = Punct::new('>', Spacing::Alone);
        end.set_span(self.end);
        let tokens: TokenStream = [TokenTree::from(start), TokenTree::from(end)].into_iter().collect();
        syn::Error::new_spanned(tokens, message)
    }
}

impl From<Span> for Site {
    fn from(span: Span) -> Self {
        Self { start: span, end: span }
    }
}

/// Collects the errors of one `#[flow]` expansion.
///
/// Dropping a collector without calling [`Errors::finish`] panics, because its errors would be
/// lost and the macro would expand as if the attribute were valid.
#[derive(Debug)]
pub(crate) struct Errors {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Self {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Records an error.
    pub(crate) fn push(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("errors are recorded before `finish`")
            .push(error);
    }

    /// Records an error that underlines `site`.
    pub(crate) fn at(&self, site: Site, message: impl Display) {
        self.push(site.error(message));
    }

    /// Returns whether no error has been recorded so far.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.borrow().as_ref().is_none_or(Vec::is_empty)
    }

    /// Consumes the collector and returns every recorded error combined into one.
    ///
    /// # Errors
    ///
    /// Returns the combined error when at least one was recorded.
    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        let errors = self.errors.borrow_mut().take().unwrap_or_default();
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        if self.errors.borrow().is_some() && !std::thread::panicking() {
            panic!("an `Errors` collector was dropped without `finish`, which would lose its errors");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_combines_every_error_in_order() {
        let errors = Errors::new();
        errors.at(Site::call_site(), "first");
        errors.at(Site::call_site(), "second");
        let combined = errors.finish().expect_err("two errors were recorded");
        let messages: Vec<String> = combined.into_iter().map(|error| error.to_string()).collect();
        assert_eq!(messages, vec!["first", "second"]);
    }

    #[test]
    fn finish_without_errors_is_ok() {
        let errors = Errors::new();
        assert!(errors.is_empty());
        assert!(errors.finish().is_ok());
    }
}
