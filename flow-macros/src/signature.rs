//! Checks the shape of the function under `#[flow]`: a free, non-generic `async fn` with two
//! arguments and a return type.
//!
//! Argument and return *types* are left to the compiler: the generated wrapper calls the
//! function with spans on those types, so a mismatch is reported there.

use syn::{FnArg, ReturnType, Signature, Type};

use crate::errors::{Errors, Site};

/// The parts of a well-shaped flow function that code generation places spans on.
#[derive(Debug)]
pub(crate) struct Shape<'a> {
    pub(crate) context: &'a Type,
    pub(crate) params: &'a Type,
    pub(crate) output: &'a Type,
}

/// The outcome of the checks.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    /// `None` when a check failed.
    pub(crate) shape: Option<Shape<'a>>,
    /// The function takes `self`, so it sits in an `impl` block where no module can be emitted.
    pub(crate) is_method: bool,
}

/// Checks `signature`, recording an error on each part that does not fit.
pub(crate) fn check<'a>(signature: &'a Signature, errors: &Errors) -> Checked<'a> {
    let expected = format!(
        "`async fn {}(ctx: &Context, params: ExecutionParams) -> FlowResult`",
        signature.ident
    );
    let mut fits = true;
    let mut fail = |site: Site, message: String| {
        errors.at(site, message);
        fits = false;
    };

    if signature.asyncness.is_none() {
        fail(
            Site::of(&signature.fn_token),
            format!("a `#[flow]` function must be `async`; write {expected}"),
        );
    }
    if let Some(unsafety) = &signature.unsafety {
        fail(
            Site::of(unsafety),
            format!("a `#[flow]` function cannot be `unsafe`; remove it and write {expected}"),
        );
    }
    if let Some(abi) = &signature.abi {
        fail(
            Site::of(abi),
            format!("a `#[flow]` function uses the Rust ABI; remove `extern` and write {expected}"),
        );
    }
    if !signature.generics.params.is_empty() || signature.generics.where_clause.is_some() {
        fail(
            Site::of(&signature.generics),
            format!(
                "a `#[flow]` function cannot be generic, because the runtime calls it with \
                 `&Context` and `ExecutionParams`; remove the generic parameters and write {expected}"
            ),
        );
    }

    let mut is_method = false;
    let mut arguments = Vec::new();
    for input in &signature.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                is_method = true;
                fail(
                    Site::of(receiver),
                    format!(
                        "a `#[flow]` function cannot take `self`; move it out of the `impl` block and write {expected}"
                    ),
                );
            }
            FnArg::Typed(argument) => arguments.push(argument),
        }
    }
    let arguments_site = Site::from(signature.paren_token.span.join());
    if arguments.len() < 2 && !is_method {
        fail(
            arguments_site,
            format!(
                "a `#[flow]` function takes 2 arguments, found {}; write {expected}",
                arguments.len()
            ),
        );
    }
    for extra in arguments.iter().skip(2) {
        fail(
            Site::of(extra),
            format!("a `#[flow]` function takes 2 arguments; remove this one and write {expected}"),
        );
    }

    // The types themselves are the compiler's to check, but swapped arguments or a context
    // taken by value read far better as one sentence than as two type mismatches.
    if let Some(context) = arguments.first()
        && !matches!(context.ty.as_ref(), Type::Reference(_))
    {
        fail(
            Site::of(&context.ty),
            format!("the first argument of a `#[flow]` function is the context, borrowed: `ctx: &Context`; write {expected}"),
        );
    }
    if let Some(params) = arguments.get(1)
        && matches!(params.ty.as_ref(), Type::Reference(_))
    {
        fail(
            Site::of(&params.ty),
            format!("the second argument of a `#[flow]` function is taken by value: `params: ExecutionParams`; write {expected}"),
        );
    }

    let output = match &signature.output {
        ReturnType::Type(_, output) => Some(output.as_ref()),
        ReturnType::Default => {
            fail(
                arguments_site,
                format!("a `#[flow]` function returns `FlowResult`; add `-> FlowResult` and write {expected}"),
            );
            None
        }
    };

    let shape = match (fits, arguments.as_slice(), output) {
        (true, [context, params], Some(output)) => Some(Shape {
            context: &context.ty,
            params: &params.ty,
            output,
        }),
        _ => None,
    };
    Checked { shape, is_method }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(signature: Signature) -> Vec<String> {
        let errors = Errors::new();
        let checked = check(&signature, &errors);
        let found = match errors.finish() {
            Ok(()) => Vec::new(),
            Err(combined) => combined.into_iter().map(|error| error.to_string()).collect(),
        };
        assert_eq!(checked.shape.is_some(), found.is_empty());
        found
    }

    #[test]
    fn flow_signature_fits() {
        let signature = syn::parse_quote!(async fn run(ctx: &Context, params: ExecutionParams) -> FlowResult);
        assert!(messages(signature).is_empty());
    }

    #[test]
    fn sync_generic_function_gets_two_errors() {
        let signature = syn::parse_quote!(fn run<T>(ctx: &Context, params: T) -> FlowResult);
        let found = messages(signature);
        assert_eq!(found.len(), 2);
        assert!(
            found[0].starts_with("a `#[flow]` function must be `async`"),
            "{}",
            found[0]
        );
        assert!(
            found[1].starts_with("a `#[flow]` function cannot be generic"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn method_is_rejected_on_self() {
        let signature = syn::parse_quote!(async fn run(&self, ctx: &Context) -> FlowResult);
        let errors = Errors::new();
        let checked = check(&signature, &errors);
        assert!(checked.is_method);
        let found: Vec<String> = errors
            .finish()
            .expect_err("self")
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("cannot take `self`"), "{}", found[0]);
    }

    #[test]
    fn swapped_arguments_are_reported_on_both() {
        let signature = syn::parse_quote!(async fn run(params: ExecutionParams, ctx: &Context) -> FlowResult);
        let found = messages(signature);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("the first argument of a `#[flow]` function is the context"), "{}", found[0]);
        assert!(found[1].starts_with("the second argument of a `#[flow]` function is taken by value"), "{}", found[1]);
    }

    #[test]
    fn each_extra_argument_is_reported() {
        let signature = syn::parse_quote!(async fn run(a: &Context, b: ExecutionParams, c: u8, d: u8) -> FlowResult);
        assert_eq!(messages(signature).len(), 2);
    }

    #[test]
    fn missing_return_type_is_reported() {
        let signature = syn::parse_quote!(async fn run(ctx: &Context, params: ExecutionParams));
        let found = messages(signature);
        assert!(found[0].contains("add `-> FlowResult`"), "{}", found[0]);
    }
}
