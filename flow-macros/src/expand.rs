//! Expands `#[flow]`: the function unchanged, a hidden builder of its `Flow`, its `inventory`
//! registration and a module of the same name with `definition()` for tests.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{Item, ItemFn, Visibility};

use crate::check::{self, Checked};
use crate::errors::{Errors, Site};
use crate::signature::{self, Shape};
use crate::wrappers;

/// Expands the attribute; on any error, emits the errors beside the unchanged item.
pub(crate) fn flow(attribute: TokenStream, item: TokenStream) -> TokenStream {
    let errors = Errors::new();
    let function = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(function)) => function,
        Ok(other) => {
            errors.at(
                Site::of(&other),
                "`#[flow]` applies to an `async fn`; e.g. \
                 `#[flow(name = \"Process Order\", stable_key = \"process-order\")] \
                 async fn process_order(ctx: &Context, params: ExecutionParams) -> FlowResult`",
            );
            return with_errors(item, errors, TokenStream::new());
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, errors, TokenStream::new());
        }
    };

    let name = function.sig.ident.unraw().to_string();
    let options = crate::attr::parse(attribute, &errors);
    let checked = check::check(&options, &name, &errors);
    let signature = signature::check(&function.sig, &errors);

    match (&signature.shape, errors.is_empty()) {
        (Some(shape), true) => {
            let expanded = generate(&function, &name, &checked, shape);
            errors.finish().expect("no error was recorded");
            expanded
        }
        _ => {
            // A method sits in an `impl` block, where no other item can be emitted.
            let stand_ins = if signature.is_method {
                TokenStream::new()
            } else {
                stand_ins(&function, &checked)
            };
            with_errors(item, errors, stand_ins)
        }
    }
}

/// Emits what keeps the rest of the crate free of follow-on diagnostics while the attribute
/// has errors: the definition module, so `name::definition()` still resolves, and uses of the
/// flow function and its handlers, so they draw no "never used" warnings.
fn stand_ins(function: &ItemFn, checked: &Checked) -> TokenStream {
    let module = definition_module(function, quote!(::core::unreachable!("`#[flow]` reported errors")));
    let generic = !function.sig.generics.params.is_empty();
    let ident = (!generic).then_some(&function.sig.ident).into_iter();
    let handlers = &checked.handlers;
    let paths = [
        &handlers.on_trigger,
        &handlers.on_instance_deploy,
        &handlers.on_instance_delete,
        &handlers.webhook_create,
        &handlers.webhook_delete,
    ];
    let paths = paths.into_iter().flatten();
    quote! {
        #module
        const _: () = {
            #( let _ = #ident; )*
            #( let _ = #paths; )*
        };
    }
}

fn with_errors(item: TokenStream, errors: Errors, module: TokenStream) -> TokenStream {
    let errors = errors.finish().err().map(|error| error.to_compile_error());
    quote! {
        #errors
        #item
        #module
    }
}

fn generate(function: &ItemFn, name: &str, checked: &Checked, shape: &Shape<'_>) -> TokenStream {
    let builder = builder_ident(function);
    let config_json = serde_json::to_string(&checked.config).expect("a FlowConfig serializes to JSON");
    let execute = wrappers::execute(&function.sig.ident, shape);
    let (handler_items, handlers) = wrappers::handlers(&checked.handlers);
    let schemas = wrappers::schemas(checked.input.as_ref(), checked.output.as_ref());
    let module = definition_module(function, quote!(super::#builder()));

    quote! {
        #function

        #[doc(hidden)]
        fn #builder() -> ::flow_runtime::__private::Flow {
            #execute
            #handler_items
            ::flow_runtime::__private::flow_from_parts(
                #config_json,
                #schemas,
                __flow_execute,
                #handlers,
                ::flow_runtime::__private::SourceLocation {
                    file: ::core::file!(),
                    line: ::core::line!(),
                    function: #name,
                },
            )
        }

        ::flow_runtime::__private::inventory::submit! {
            ::flow_runtime::__private::FlowRegistration { definition: #builder }
        }

        #module
    }
}

fn builder_ident(function: &ItemFn) -> syn::Ident {
    format_ident!(
        "__flow_definition_{}",
        function.sig.ident.unraw(),
        span = Span::call_site()
    )
}

/// Emits `mod <function> { pub fn definition() -> Flow }`. A module lives in the type
/// namespace and the function in the value namespace, so both names coexist.
fn definition_module(function: &ItemFn, body: TokenStream) -> TokenStream {
    let ident = &function.sig.ident;
    let name = ident.unraw().to_string();
    let visibility = &function.vis;
    // `pub` inside a private module would trip `unreachable_pub`, so only a public module
    // gets a public function.
    let inner_visibility = match visibility {
        Visibility::Public(_) => quote!(pub),
        Visibility::Restricted(_) | Visibility::Inherited => quote!(pub(crate)),
    };
    let module_doc = format!(" The `{name}` flow's definition, for tests and tools.");
    let function_doc = format!(
        " Returns the `{name}` flow as its `#[flow]` attribute declares it: settings, execution \
         function and handlers."
    );
    quote! {
        #[doc = #module_doc]
        #visibility mod #ident {
            #[doc = #function_doc]
            #[allow(dead_code)]
            #inner_visibility fn definition() -> ::flow_runtime::Flow {
                #body
            }
        }
    }
}
