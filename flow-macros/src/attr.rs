//! Parses the arguments of `#[flow(...)]` into options carried with their source spans.
//!
//! Parsing checks only the shape of each value (a string, an integer, a path). What the
//! values mean is checked in `check.rs` by flow-core's rules.

use flow_core::ApiKeySource;
use flow_core::suggest::closest;
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, Lit, LitStr, Token};

use crate::errors::{Errors, Site};
use crate::keys::{self, Kind, Spec};
use crate::options::{Entry, Options, Value};

/// Parses the attribute's arguments, recording every error and skipping past it where the
/// syntax allows, so later options are still checked.
pub(crate) fn parse(tokens: TokenStream, errors: &Errors) -> Options {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| parse_option(&meta, keys::FLOW, None, &mut options, errors));
    if let Err(error) = parser.parse2(tokens) {
        errors.push(error);
    }
    options
}

fn parse_option(
    meta: &ParseNestedMeta<'_>,
    specs: &'static [Spec],
    parent: Option<&'static Spec>,
    options: &mut Options,
    errors: &Errors,
) -> syn::Result<()> {
    let key_site = Site::of(&meta.path);
    let spec = meta
        .path
        .get_ident()
        .and_then(|ident| specs.iter().find(|spec| ident == spec.name()));
    let Some(spec) = spec else {
        let written = meta.path.to_token_stream().to_string().replace(' ', "");
        let suggestion = closest(&written, specs.iter().map(Spec::name), 1).first().copied();
        if let Some(name) = suggestion {
            let path = specs.iter().find(|spec| spec.name() == name).map(|spec| spec.path);
            options.suggested.extend(path);
        }
        errors.at(key_site, unknown_option(&written, suggestion, specs, parent));
        skip_value(meta)?;
        return Ok(());
    };
    if !options.written.insert(spec.path) {
        let site = key_site.through(skip_value(meta)?.unwrap_or(key_site));
        errors.at(site, format!("`{}` is already set; remove this duplicate", spec.path));
        return Ok(());
    }

    match spec.kind {
        Kind::Flag => parse_flag(meta, spec, key_site, options, errors),
        Kind::Group(children) => parse_group(meta, spec, children, key_site, options, errors),
        Kind::Str | Kind::Int | Kind::Path | Kind::Type | Kind::KeyList => {
            parse_value(meta, spec, key_site, options, errors)
        }
    }
}

fn parse_flag(
    meta: &ParseNestedMeta<'_>,
    spec: &'static Spec,
    key_site: Site,
    options: &mut Options,
    errors: &Errors,
) -> syn::Result<()> {
    match skip_value(meta)? {
        None => insert(options, spec, Value::Flag, key_site),
        Some(value_site) => errors.at(
            key_site.through(value_site),
            format!("`{}` is a flag and takes no value; write `{}`", spec.path, spec.example),
        ),
    }
    Ok(())
}

fn parse_group(
    meta: &ParseNestedMeta<'_>,
    spec: &'static Spec,
    children: &'static [Spec],
    key_site: Site,
    options: &mut Options,
    errors: &Errors,
) -> syn::Result<()> {
    if !meta.input.peek(syn::token::Paren) {
        let site = key_site.through(skip_value(meta)?.unwrap_or(key_site));
        errors.at(site, expected_message(spec));
        return Ok(());
    }
    let content;
    let parentheses = syn::parenthesized!(content in meta.input);
    insert(
        options,
        spec,
        Value::Group,
        key_site.through(Site::from(parentheses.span.join())),
    );
    // `ParseNestedMeta::parse_nested_meta` rejects empty parentheses, but `preprocess()` is
    // valid syntax whose emptiness flow-core reports with a better message.
    let nested = syn::meta::parser(|nested| parse_option(&nested, children, Some(spec), options, errors));
    nested.parse2(content.parse()?)
}

fn parse_value(
    meta: &ParseNestedMeta<'_>,
    spec: &'static Spec,
    key_site: Site,
    options: &mut Options,
    errors: &Errors,
) -> syn::Result<()> {
    if !meta.input.peek(Token![=]) {
        let site = key_site.through(skip_value(meta)?.unwrap_or(key_site));
        errors.at(site, expected_message(spec));
        return Ok(());
    }
    let input = meta.value()?;

    if let Kind::Type = spec.kind {
        if input.peek(Lit) {
            let literal: Lit = input.parse()?;
            let message = match literal {
                Lit::Str(_) => format!(
                    "`{}` takes a type, not a string; remove the quotes, e.g. `{}`",
                    spec.path, spec.example
                ),
                _ => format!("`{}` takes a type, not a literal; e.g. `{}`", spec.path, spec.example),
            };
            errors.at(Site::of(&literal), message);
            return Ok(());
        }
        let ty: syn::Type = input.parse()?;
        let site = key_site.through(Site::of(&ty));
        insert(options, spec, Value::Type(Box::new(ty)), site);
        return Ok(());
    }

    let expr: Expr = input.parse()?;
    let site = key_site.through(Site::of(&expr));
    // Each reader records its own error, so a value of the wrong kind is reported once.
    let value = match spec.kind {
        Kind::Str => string(&expr).cloned().map(Value::Str),
        Kind::Path => function_path(&expr).map(Value::Path),
        Kind::Int => integer(&expr, spec, errors).map(Value::Int),
        Kind::KeyList => api_keys(&expr, spec, errors).map(Value::Keys),
        Kind::Flag | Kind::Type | Kind::Group(_) => unreachable!("flags, types and groups return above"),
    };
    match value {
        Some(value) => insert(options, spec, value, site),
        None if matches!(spec.kind, Kind::Str | Kind::Path) => errors.at(Site::of(&expr), expected_message(spec)),
        None => {}
    }
    Ok(())
}

fn insert(options: &mut Options, spec: &'static Spec, value: Value, site: Site) {
    options.entries.insert(spec.path, Entry { value, site });
}

fn string(expr: &Expr) -> Option<&LitStr> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(literal), ..
        }) => Some(literal),
        _ => None,
    }
}

/// Reads a `u32` literal, recording an error for any other value.
fn integer(expr: &Expr, spec: &Spec, errors: &Errors) -> Option<u32> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(literal), ..
    }) = expr
    else {
        errors.at(Site::of(expr), expected_message(spec));
        return None;
    };
    match literal.base10_parse::<u32>() {
        Ok(number) => Some(number),
        Err(_) => {
            errors.at(
                Site::of(literal),
                format!(
                    "`{}` is {}, which does not fit in `u32`; e.g. `{}`",
                    spec.path,
                    literal.base10_digits(),
                    spec.example
                ),
            );
            None
        }
    }
}

fn function_path(expr: &Expr) -> Option<syn::Path> {
    match expr {
        Expr::Path(syn::ExprPath { qself: None, path, .. }) => Some(path.clone()),
        _ => None,
    }
}

/// Reads `["literal", env("VAR")]`, recording an error on each element of another form.
fn api_keys(expr: &Expr, spec: &Spec, errors: &Errors) -> Option<Vec<ApiKeySource>> {
    let Expr::Array(array) = expr else {
        errors.at(Site::of(expr), expected_message(spec));
        return None;
    };
    let mut keys = Vec::new();
    let mut valid = true;
    for element in &array.elems {
        if let Some(literal) = string(element) {
            keys.push(ApiKeySource::Literal(literal.value()));
        } else if let Some(variable) = env_variable(element) {
            keys.push(ApiKeySource::Env(variable.value()));
        } else {
            valid = false;
            errors.at(
                Site::of(element),
                format!(
                    "each key in `{}` is a string literal or `env(\"VAR\")` naming an environment variable; e.g. `{}`",
                    spec.path, spec.example
                ),
            );
        }
    }
    valid.then_some(keys)
}

/// Reads `env("VAR")`.
fn env_variable(expr: &Expr) -> Option<&LitStr> {
    let Expr::Call(call) = expr else { return None };
    let Expr::Path(function) = call.func.as_ref() else {
        return None;
    };
    if !function.path.is_ident("env") || call.args.len() != 1 {
        return None;
    }
    string(&call.args[0])
}

/// Consumes the rest of an option after its name (`= value` or `(...)`) and returns the range
/// it covered, or `None` when the option has no value.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<Option<Site>> {
    let input = meta.input;
    let mut skipped: Option<Site> = None;
    while !input.is_empty() && !input.peek(Token![,]) {
        let tree: TokenTree = input.parse()?;
        let site = Site::of(&tree);
        skipped = Some(skipped.map_or(site, |start| start.through(site)));
    }
    Ok(skipped)
}

fn expected_message(spec: &Spec) -> String {
    format!(
        "`{}` takes {}; e.g. `{}`",
        spec.path,
        spec.kind.expected(),
        spec.example
    )
}

fn unknown_option(written: &str, suggestion: Option<&str>, specs: &[Spec], parent: Option<&Spec>) -> String {
    let place = match parent {
        Some(parent) => format!("`{}(...)`", parent.path),
        None => "`#[flow(...)]`".to_owned(),
    };
    let suggestion = match suggestion {
        Some(name) => format!("; did you mean `{name}`?"),
        None => ".".to_owned(),
    };
    let valid: Vec<String> = specs.iter().map(|spec| format!("`{}`", spec.name())).collect();
    format!(
        "unknown option `{written}` in {place}{suggestion} The valid options are {}",
        valid.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse_ok(tokens: TokenStream) -> Options {
        let errors = Errors::new();
        let options = parse(tokens, &errors);
        errors.finish().expect("the attribute is valid");
        options
    }

    fn messages(tokens: TokenStream) -> Vec<String> {
        let errors = Errors::new();
        parse(tokens, &errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(combined) => combined.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    #[test]
    fn values_of_every_kind_are_read() {
        let options = parse_ok(quote! {
            name = "Process Order",
            synchronous,
            retry(max_attempts = 3, delay_minutes = 5),
            on_trigger = self::verify,
            organization_api_keys = ["k1", env("ORG_KEY")],
            schemas(invoke(input = Vec<Order>)),
        });
        assert_eq!(options.str("name").map(LitStr::value).as_deref(), Some("Process Order"));
        assert!(options.written("synchronous"));
        assert_eq!(options.int("retry.max_attempts"), Some(3));
        assert_eq!(options.int("retry.delay_minutes"), Some(5));
        assert!(options.path("on_trigger").is_some());
        assert_eq!(
            options.keys("organization_api_keys"),
            Some(&[ApiKeySource::Literal("k1".into()), ApiKeySource::Env("ORG_KEY".into())][..])
        );
        let input = options.ty("schemas.invoke.input").expect("input type");
        assert_eq!(input.to_token_stream().to_string(), "Vec < Order >");
    }

    #[test]
    fn unknown_option_suggests_the_closest_name() {
        let found = messages(quote!(stable_kye = "x"));
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("unknown option `stable_kye` in `#[flow(...)]`; did you mean `stable_key`?"));
        assert!(
            found[0].contains("The valid options are `name`, `stable_key`"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn unknown_nested_option_names_its_group() {
        let found = messages(quote!(retry(max_attempt = 3)));
        assert!(found[0].starts_with("unknown option `max_attempt` in `retry(...)`; did you mean `max_attempts`?"));
    }

    #[test]
    fn duplicate_option_is_rejected() {
        let found = messages(quote!(name = "A", name = "B"));
        assert_eq!(found, vec!["`name` is already set; remove this duplicate"]);
    }

    #[test]
    fn wrong_value_kinds_are_each_reported() {
        let found = messages(quote!(
            name = 3,
            synchronous = true,
            retry(max_attempts = "3"),
            queue = 4
        ));
        assert_eq!(
            found,
            vec![
                "`name` takes a string literal; e.g. `name = \"Process Order\"`",
                "`synchronous` is a flag and takes no value; write `synchronous`",
                "`retry.max_attempts` takes a non-negative integer literal; e.g. `max_attempts = 3`",
                "`queue` takes options in parentheses; e.g. `queue(throttled, concurrency_limit = 4)`",
            ]
        );
    }

    #[test]
    fn integer_too_large_for_u32_is_rejected() {
        let found = messages(quote!(retry(max_attempts = 4294967296)));
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("does not fit in `u32`"), "{}", found[0]);
    }

    #[test]
    fn each_bad_api_key_element_is_reported() {
        let errors = Errors::new();
        let options = parse(quote!(organization_api_keys = ["k1", key(), KEY]), &errors);
        let found: Vec<String> = errors
            .finish()
            .expect_err("bad keys")
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(found.len(), 2);
        assert!(
            found
                .iter()
                .all(|message| message.starts_with("each key in `organization_api_keys`"))
        );
        assert!(options.keys("organization_api_keys").is_none());
        assert!(options.written("organization_api_keys"));
    }

    #[test]
    fn string_where_a_type_belongs_is_rejected() {
        let found = messages(quote!(schemas(invoke(input = "OrderInput"))));
        assert_eq!(
            found,
            vec!["`schemas.invoke.input` takes a type, not a string; remove the quotes, e.g. `input = OrderInput`"]
        );
    }
}
