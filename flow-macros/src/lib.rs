//! The `#[flow]` attribute.

use proc_macro::TokenStream;

/// Declares a flow.
#[proc_macro_attribute]
pub fn flow(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
