#define _GNU_SOURCE
#include "consentry_system.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int file_holds(const char *path, const unsigned char *needles, const size_t *lengths, int count,
                      unsigned char *buffer, size_t chunk, size_t overlap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return 2;
    size_t carried = 0;
    for (;;) {
        ssize_t n = read(fd, buffer + carried, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return 2;
        }
        if (n == 0) break;
        size_t have = carried + (size_t)n;
        const unsigned char *needle = needles;
        for (int i = 0; i < count; i++) {
            if (lengths[i] > 0 && memmem(buffer, have, needle, lengths[i]) != NULL) {
                close(fd);
                return 1;
            }
            needle += lengths[i];
        }
        // Keep the last `overlap` bytes, so a needle that straddles two reads is still found.
        carried = have < overlap ? have : overlap;
        memmove(buffer, buffer + have - carried, carried);
    }
    close(fd);
    return 0;
}

int consentry_scan_files_in_child(const char *const *paths, int path_count, const unsigned char *needles,
                                  const size_t *needle_lengths, int needle_count, unsigned char *buffer, size_t chunk,
                                  unsigned char *hits) {
    size_t overlap = 0;
    for (int i = 0; i < needle_count; i++) {
        if (needle_lengths[i] > overlap) overlap = needle_lengths[i];
    }
    if (overlap > 0) overlap -= 1;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
    pid_t child = fork();
    if (child < 0) {
        int saved = errno;
        close(pipefd[0]);
        close(pipefd[1]);
        errno = saved;
        return -1;
    }
    if (child == 0) {
        close(pipefd[0]);
        for (int p = 0; p < path_count; p++) {
            unsigned char answer = (unsigned char)file_holds(paths[p], needles, needle_lengths, needle_count, buffer, chunk, overlap);
            while (write(pipefd[1], &answer, 1) < 0 && errno == EINTR) {}
        }
        _exit(0);
    }
    close(pipefd[1]);
    int got = 0;
    while (got < path_count) {
        ssize_t n = read(pipefd[0], hits + got, (size_t)(path_count - got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (int)n;
    }
    close(pipefd[0]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    if (got != path_count || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        errno = ECHILD;
        return -1;
    }
    return 0;
}
