#include "consentry_system.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static const char *fatal_message = "error: internal fault\n";
static size_t fatal_length = 22;
static int fatal_exit_code = 70;
static char alternate_stack[64 * 1024];

static void report_fatal_signal(int signal_number) {
    (void)signal_number;
    ssize_t ignored = write(STDERR_FILENO, fatal_message, fatal_length);
    (void)ignored;
    _exit(fatal_exit_code);
}

void consentry_install_fatal_signal_report(const char *message, int exit_code) {
    fatal_message = message;
    fatal_length = strlen(message);
    fatal_exit_code = exit_code;
    stack_t stack;
    memset(&stack, 0, sizeof stack);
    stack.ss_sp = alternate_stack;
    stack.ss_size = sizeof alternate_stack;
    (void)sigaltstack(&stack, NULL);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = report_fatal_signal;
    action.sa_flags = SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    int signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) (void)sigaction(signals[i], &action, NULL);
}
