//! The options of one `#[flow(...)]` attribute as parsed: each value with the tokens it came
//! from, by dotted path (`retry.max_attempts`).

use std::collections::{BTreeMap, BTreeSet};

use flow_core::ApiKeySource;
use syn::LitStr;

use crate::errors::Site;

/// A parsed option value.
#[derive(Debug)]
pub(crate) enum Value {
    Flag,
    Str(LitStr),
    Int(u32),
    Path(syn::Path),
    Type(Box<syn::Type>),
    Keys(Vec<ApiKeySource>),
    Group,
}

/// An option as written: its value and the tokens from its name through its value.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) value: Value,
    pub(crate) site: Site,
}

/// The options of one attribute, by dotted path (`retry.max_attempts`).
#[derive(Debug, Default)]
pub(crate) struct Options {
    pub(crate) entries: BTreeMap<&'static str, Entry>,
    /// Every option written, including those whose value was invalid.
    pub(crate) written: BTreeSet<&'static str>,
    /// Options an unknown option was probably meant to be: its "did you mean" suggestion.
    pub(crate) suggested: BTreeSet<&'static str>,
}

impl Options {
    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// Returns whether the option is written, with a valid value or not.
    pub(crate) fn written(&self, path: &str) -> bool {
        self.written.contains(path)
    }

    /// Returns whether the option is written or an unknown option was suggested to be it. A
    /// "missing option" error would repeat the error already on those tokens.
    pub(crate) fn mentioned(&self, path: &str) -> bool {
        self.written(path) || self.suggested.contains(path)
    }

    pub(crate) fn str(&self, path: &str) -> Option<&LitStr> {
        match &self.get(path)?.value {
            Value::Str(literal) => Some(literal),
            _ => None,
        }
    }

    pub(crate) fn int(&self, path: &str) -> Option<u32> {
        match self.get(path)?.value {
            Value::Int(number) => Some(number),
            _ => None,
        }
    }

    pub(crate) fn path(&self, path: &str) -> Option<&syn::Path> {
        match &self.get(path)?.value {
            Value::Path(function) => Some(function),
            _ => None,
        }
    }

    pub(crate) fn ty(&self, path: &str) -> Option<&syn::Type> {
        match &self.get(path)?.value {
            Value::Type(ty) => Some(ty),
            _ => None,
        }
    }

    pub(crate) fn keys(&self, path: &str) -> Option<&[ApiKeySource]> {
        match &self.get(path)?.value {
            Value::Keys(keys) => Some(keys),
            _ => None,
        }
    }
}
