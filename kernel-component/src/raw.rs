//! `extism:kernel/raw`: the raw Extism ABI, one [`Kernel`](kernel_core::Kernel) method each,
//! generated from the ABI table ([`kernel_abi::for_each_kernel_function!`]).

use crate::Component;
use crate::arena::with_kernel;
use crate::exports::extism::kernel::raw::Guest;

macro_rules! raw_methods {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ident),*) $(-> $ret:ident)?; )*) => {
        $(
            $(#[$doc])*
            fn $name($($arg: $ty),*) $(-> $ret)? {
                with_kernel(|k| k.$name($($arg),*))
            }
        )*
    };
}

impl Guest for Component {
    kernel_abi::for_each_kernel_function!(raw_methods);
}
