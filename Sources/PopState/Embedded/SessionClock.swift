/// The clock embedded-store sessions expire by: monotonic, shared by every process on the machine.
///
/// The platform's clock lives in `SessionClock+<Platform>.swift`. Sessions remember the boot they were made in,
/// so a session left over from before a reboot counts as expired.
package enum SessionClock {}
