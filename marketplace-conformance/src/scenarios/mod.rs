//! The scenarios: each takes a fresh, empty store and panics when the backend
//! breaks the contract.

mod accounts;
mod catalog;
mod hostile;
mod images;
mod limits;
mod money;
mod operator;
mod orders;
mod outbox;
mod payments;
mod payouts;
mod sessions;
mod shopping;
mod skus;
mod throttle;

pub use accounts::*;
pub use catalog::*;
pub use hostile::*;
pub use images::*;
pub use limits::*;
pub use money::*;
pub use operator::*;
pub use orders::*;
pub use outbox::*;
pub use payments::*;
pub use payouts::*;
pub use sessions::*;
pub use shopping::*;
pub use skus::*;
pub use throttle::*;

/// Asserts that a result is a particular error variant.
#[macro_export]
#[doc(hidden)]
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            Err(other) => panic!("expected {}, got error {other:?}", stringify!($pattern)),
            Ok(_) => panic!("expected {}, got success", stringify!($pattern)),
        }
    };
}
