//! The plain `fn`s that adapt the user's `async fn`s to the runtime's function pointer types
//! (`ExecuteFn`, `TriggerFn`, `HookFn`), and the schema expressions.
//!
//! Each call is emitted with the span of the user's tokens it depends on, so the compiler
//! reports a wrong argument type at that argument and a wrong return type at the return type.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::check::HandlerPaths;
use crate::signature::Shape;

/// Returns a span that resolves names at the macro's call site but points at `tokens`.
fn at(tokens: &impl Spanned) -> Span {
    Span::call_site().located_at(tokens.span())
}

/// Returns call-site spans that point at the first and the last token of `tokens`. An
/// expression that starts at the first and ends at the second underlines all of `tokens`.
fn at_range(tokens: &impl ToTokens) -> (Span, Span) {
    let mut trees = tokens.to_token_stream().into_iter();
    let first = trees.next().map_or_else(Span::call_site, |tree| tree.span());
    let last = trees.last().map_or(first, |tree| tree.span());
    (Span::call_site().located_at(first), Span::call_site().located_at(last))
}

/// Emits `fn __flow_execute`, which calls the flow function and boxes its future.
pub(crate) fn execute(function: &syn::Ident, shape: &Shape<'_>) -> TokenStream {
    let context = quote_spanned!(at(shape.context)=> ctx);
    let params = quote_spanned!(at(shape.params)=> params);

    // The call and its boxing point at the return type, so an error about the call's future
    // (not `Send`, another output type) underlines the return type.
    let (first, last) = at_range(shape.output);
    let mut function = function.clone();
    function.set_span(first);
    let arguments = quote_spanned!(last=> (#context, #params));
    let boxing = quote_spanned!(first=> ::flow_runtime::__private::execute_future);
    let boxed_call = quote_spanned!(last=> (#function #arguments));
    quote! {
        fn __flow_execute<'a>(
            ctx: &'a ::flow_runtime::Context,
            params: ::flow_runtime::core::ExecutionParams,
        ) -> ::flow_runtime::__private::BoxFuture<'a, ::flow_runtime::core::FlowResult> {
            #boxing #boxed_call
        }
    }
}

/// Emits a wrapper for each handler and the `Handlers` expression that refers to them.
pub(crate) fn handlers(paths: &HandlerPaths) -> (TokenStream, TokenStream) {
    let on_trigger = paths.on_trigger.as_ref().map(trigger);
    let hooks = [
        ("__flow_on_instance_deploy", &paths.on_instance_deploy),
        ("__flow_on_instance_delete", &paths.on_instance_delete),
        ("__flow_webhook_create", &paths.webhook_create),
        ("__flow_webhook_delete", &paths.webhook_delete),
    ];
    let mut items = quote!(#on_trigger);
    let mut fields = Vec::new();
    for (wrapper, path) in hooks {
        let wrapper = syn::Ident::new(wrapper, Span::call_site());
        if let Some(path) = path {
            items.extend(hook(&wrapper, path));
            fields.push(quote!(::core::option::Option::Some(#wrapper)));
        } else {
            fields.push(quote!(::core::option::Option::None));
        }
    }
    let on_trigger = match on_trigger {
        Some(_) => quote!(::core::option::Option::Some(__flow_on_trigger)),
        None => quote!(::core::option::Option::None),
    };
    let [deploy, delete, create, remove] = fields.try_into().expect("four hooks");
    let handlers = quote! {
        ::flow_runtime::__private::Handlers {
            on_trigger: #on_trigger,
            on_instance_deploy: #deploy,
            on_instance_delete: #delete,
            webhook_create: #create,
            webhook_delete: #remove,
        }
    };
    (items, handlers)
}

fn trigger(path: &syn::Path) -> TokenStream {
    let span = at(path);
    let call = quote_spanned!(span=> ::flow_runtime::__private::trigger_future(#path(ctx, payload)));
    quote! {
        fn __flow_on_trigger<'a>(
            ctx: &'a ::flow_runtime::Context,
            payload: ::flow_runtime::core::TriggerPayload,
        ) -> ::flow_runtime::__private::BoxFuture<
            'a,
            ::core::result::Result<::flow_runtime::core::TriggerResult, ::flow_runtime::core::TriggerError>,
        > {
            #call
        }
    }
}

fn hook(wrapper: &syn::Ident, path: &syn::Path) -> TokenStream {
    let span = at(path);
    let call = quote_spanned!(span=> ::flow_runtime::__private::hook_future(#path(ctx)));
    quote! {
        fn #wrapper<'a>(
            ctx: &'a ::flow_runtime::Context,
        ) -> ::flow_runtime::__private::BoxFuture<'a, ::core::result::Result<(), ::flow_runtime::core::FlowError>> {
            #call
        }
    }
}

/// Emits the `(input, output)` schema pair; `type_schema::<T>` is spanned at `T`, so a type
/// without a `JsonSchema` implementation is reported there.
pub(crate) fn schemas(input: Option<&syn::Type>, output: Option<&syn::Type>) -> TokenStream {
    let schema = |ty: Option<&syn::Type>| match ty {
        Some(ty) => quote_spanned! {at(ty)=>
            ::core::option::Option::Some(::flow_runtime::__private::type_schema::<#ty>(::core::stringify!(#ty)))
        },
        None => quote!(::core::option::Option::None),
    };
    let input = schema(input);
    let output = schema(output);
    quote!((#input, #output))
}
