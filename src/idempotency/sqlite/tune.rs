//! Process-wide SQLite tuning: the store's one `unsafe` call.
//!
//! Invariant: SQLite is configured only before it is first used, from one
//! thread; the caller of [`tune_sqlite_process`] guarantees it.

/// Turns off SQLite's process-wide memory statistics, which take a global
/// mutex on every allocation SQLite makes (the record writer makes several per
/// row). taskq reads no SQLite memory statistic. The binary calls it first
/// thing in `main`; a program using the library may do the same.
///
/// Called after SQLite was initialised (any connection opened), it changes
/// nothing: SQLite refuses configuration changes once running.
///
/// # Safety
///
/// No other thread may be using SQLite during the call (`sqlite3_config` is
/// not thread-safe): call it before spawning threads that touch SQLite.
pub unsafe fn tune_sqlite_process() {
    // SAFETY: the caller guarantees no concurrent SQLite use. The variadic
    // argument of SQLITE_CONFIG_MEMSTATUS is one C int, passed as such.
    let _ = unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int)
    };
}
