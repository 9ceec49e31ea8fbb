//! `#[sluice_plugin::transform]` and `#[sluice_plugin::transform_batch]`: turn one Rust function
//! into a sluice transform plugin by generating the ABI exports (see transforms/ABI.md).

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn};

/// Marks `fn(Record) -> Output` as the plugin: it is called for every record of every batch.
#[proc_macro_attribute]
pub fn transform(_attr: TokenStream, item: TokenStream) -> TokenStream {
    export(item, quote!(process_each))
}

/// Marks `fn(&[Record]) -> Vec<Output>` as the plugin: it sees the whole batch and returns one
/// output per input record, in the same order.
#[proc_macro_attribute]
pub fn transform_batch(_attr: TokenStream, item: TokenStream) -> TokenStream {
    export(item, quote!(process_batch))
}

fn export(item: TokenStream, runner: proc_macro2::TokenStream) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    let name = &function.sig.ident;
    quote! {
        #function

        #[no_mangle]
        pub extern "C" fn sluice_abi_version() -> i32 {
            ::sluice_plugin::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn sluice_alloc(len: i32) -> i32 {
            ::sluice_plugin::__private::alloc(len)
        }

        #[no_mangle]
        pub extern "C" fn sluice_init(ptr: i32, len: i32) -> i32 {
            ::sluice_plugin::__private::init(ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn sluice_process(ptr: i32, len: i32) -> i64 {
            ::sluice_plugin::__private::#runner(ptr, len, #name)
        }
    }
    .into()
}
