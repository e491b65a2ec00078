//! Background OS threads (the redb writer, the log writer, the metrics restore) run at a lower
//! scheduling priority than the may workers, so a worker woken by a client's bytes preempts them at
//! once instead of waiting out their time slice: on a machine with few cores their batch work
//! (group commits, log flushes) must not sit in front of a request.
//!
//! Invariant: only threads that nobody waits on for a single request's bytes call this.

/// The niceness background threads run at (workers run at the process's own, normally 0).
const BACKGROUND_NICE: libc::c_int = 10;

/// Lowers the calling thread's priority. Best effort: a refusal (a locked-down container, a
/// non-Linux system) leaves the thread as it was.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid has no preconditions; setpriority on our own thread id changes only this
    // thread's nice value (Linux applies PRIO_PROCESS to a thread id) and cannot fault.
    unsafe {
        let tid = libc::gettid();
        #[allow(clippy::cast_sign_loss)]
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE);
    }
}
