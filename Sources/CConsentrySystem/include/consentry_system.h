#ifndef CONSENTRY_SYSTEM_H
#define CONSENTRY_SYSTEM_H
#include <stddef.h>

/// Searches each of `path_count` files for any of `needle_count` byte strings, in a forked child process.
///
/// Why a child: POSIX record locks belong to a process, and closing any descriptor of a file drops every lock the
/// process holds on it. SQLite keeps its locks on the vault's database, -wal and -shm files, so opening and closing
/// those files in a process that holds connections silently unlocks them. The child holds no locks, so its opens and
/// closes harm nothing; it uses only open, read, close, write and _exit (no allocation after fork).
///
/// `needles` holds the needles back to back, `needle_lengths` their lengths. `buffer` (at least
/// `chunk + longest needle` bytes, allocated by the caller before the call) is the child's read buffer.
/// On return `hits[i]` is 1 when file i holds a needle, 0 when not, and 2 when it could not be read.
/// Returns 0 on success, -1 when the child could not be started or did not report (errno tells why).
int consentry_scan_files_in_child(const char *const *paths, int path_count, const unsigned char *needles,
                                  const size_t *needle_lengths, int needle_count, unsigned char *buffer, size_t chunk,
                                  unsigned char *hits);

/// Installs handlers for the fatal signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT) that write `message`
/// to standard error and end the process with `exit_code`, instead of a stack trace and a bare signal status.
/// The main thread gets an alternate signal stack, so that a stack overflow there is reported too. `message` must
/// stay valid for the process's life. Only async-signal-safe calls run in the handler (write, _exit).
void consentry_install_fatal_signal_report(const char *message, int exit_code);

#endif
