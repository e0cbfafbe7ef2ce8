//! The bottle handle as C holds it: the safe core's `Bottle` and its
//! machine name as a C string. Every file of the boundary that takes a
//! bottle uses it from here; `ffi::bottle` re-exports it with the calls.

use std::ffi::CString;

use crate::bottle::Bottle;

/// An open handle on one smolvm machine (opaque).
///
/// Get one from `bottle_open` (a machine someone else runs) or
/// `bottle_launch` (a machine the bottle owns), release it with
/// `bottle_close` or `bottle_close_checked`. A bottle holds no mutable
/// state: any number of threads may run operations on the same bottle at
/// once; each call runs its own smolvm process. Only closing must not race
/// with other calls on the same bottle.
pub struct bottle {
    pub(super) inner: Bottle,
    /// The machine name as C sees it, kept for `bottle_machine_name`.
    pub(super) name: CString,
}

impl bottle {
    pub(crate) fn new(inner: Bottle) -> Self {
        let name = CString::new(inner.machine()).expect("machine names have no NUL");
        bottle { inner, name }
    }
}
