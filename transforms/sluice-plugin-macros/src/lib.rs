//! `#[sluice_plugin::transform]` and `#[sluice_plugin::transform_batch]`: turn one Rust function
//! into a sluice transform plugin by generating the ABI exports (see transforms/ABI.md).
//!
//! Both take an optional `config = Type`: the pipeline's `config:` is then parsed into `Type`
//! (any `serde::Deserialize`; add `#[serde(deny_unknown_fields)]` to reject misspelt keys) when
//! the plugin starts, a config that does not parse is refused with serde's message, and the
//! function receives `&Type` as its second argument.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn, MetaNameValue, Type};

/// Marks `fn(Record) -> Output` (or `fn(Record, &Config) -> Output` with `config = Config`) as
/// the plugin: it is called for every record of every batch.
#[proc_macro_attribute]
pub fn transform(attr: TokenStream, item: TokenStream) -> TokenStream {
    let shape = Shape {
        runner: quote!(process_each),
        input: quote!(::sluice_plugin::Record<'a>),
        output: quote!(::sluice_plugin::Output<'a>),
        fallback: quote!(::sluice_plugin::Output::failed()),
    };
    export(attr, item, shape)
}

/// Marks `fn(&[Record]) -> Vec<Output>` (or with `&Config` as a second argument) as the plugin:
/// it sees the whole batch and returns one output per input record, in the same order.
#[proc_macro_attribute]
pub fn transform_batch(attr: TokenStream, item: TokenStream) -> TokenStream {
    let shape = Shape {
        runner: quote!(process_batch),
        input: quote!(&[::sluice_plugin::Record<'a>]),
        output: quote!(::std::vec::Vec<::sluice_plugin::Output<'a>>),
        fallback: quote!(input.iter().map(|_| ::sluice_plugin::Output::failed()).collect()),
    };
    export(attr, item, shape)
}

/// The type named by `config = Type`, if the attribute has one.
fn config_type(attr: TokenStream) -> syn::Result<Option<Type>> {
    if attr.is_empty() {
        return Ok(None);
    }
    let meta: MetaNameValue = syn::parse(attr)?;
    if !meta.path.is_ident("config") {
        return Err(syn::Error::new_spanned(meta.path, "the only option is `config = Type`"));
    }
    let syn::Expr::Path(path) = meta.value else {
        return Err(syn::Error::new_spanned(meta.value, "expected a type name: `config = MyConfig`"));
    };
    Ok(Some(Type::Path(syn::TypePath { qself: None, path: path.path })))
}

/// How the generated code calls the user's function.
struct Shape {
    runner: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
    output: proc_macro2::TokenStream,
    /// What to return if the config is somehow missing (sluice always calls sluice_init first).
    fallback: proc_macro2::TokenStream,
}

fn export(attr: TokenStream, item: TokenStream, shape: Shape) -> TokenStream {
    let function = parse_macro_input!(item as ItemFn);
    let config = match config_type(attr) {
        Ok(c) => c,
        Err(e) => return e.to_compile_error().into(),
    };
    let name = &function.sig.ident;
    let Shape { runner, input, output, fallback } = shape;
    let (init, entry, glue) = match config {
        None => (quote! { ::sluice_plugin::__private::init(ptr, len) }, quote! { #name }, quote! {}),
        Some(ty) => (
            quote! { ::sluice_plugin::__private::init_typed::<#ty>(ptr, len, &__SLUICE_CONFIG) },
            quote! { __sluice_with_config },
            quote! {
                static __SLUICE_CONFIG: ::sluice_plugin::__private::OnceLock<#ty> =
                    ::sluice_plugin::__private::OnceLock::new();

                fn __sluice_with_config<'a>(input: #input) -> #output {
                    match __SLUICE_CONFIG.get() {
                        Some(config) => #name(input, config),
                        None => #fallback,
                    }
                }
            },
        ),
    };
    quote! {
        #function
        #glue

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
            #init
        }

        #[no_mangle]
        pub extern "C" fn sluice_init_error() -> i64 {
            ::sluice_plugin::__private::init_error()
        }

        #[no_mangle]
        pub extern "C" fn sluice_process(ptr: i32, len: i32) -> i64 {
            ::sluice_plugin::__private::#runner(ptr, len, #entry)
        }
    }
    .into()
}
