/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stand-alone driver for libFuzzer-style targets, for builds without -fsanitize=fuzzer: runs
 * LLVMFuzzerTestOneInput once over every file named on the command line, and over every regular
 * file inside directories named there (one level; sorted, so runs are reproducible). Exits 0 when
 * all inputs were run; a crash or sanitizer report is the failure signal. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
        FILE *f;
        uint8_t *buf = NULL;
        size_t size = 0, allocated = 0;

        f = fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -errno;
        }
        for (;;) {
                size_t n;

                if (size == allocated) {
                        uint8_t *b;

                        allocated = allocated ? allocated * 2 : 4096;
                        b = realloc(buf, allocated);
                        if (!b) {
                                free(buf);
                                fclose(f);
                                return -ENOMEM;
                        }
                        buf = b;
                }
                n = fread(buf + size, 1, allocated - size, f);
                size += n;
                if (n == 0)
                        break;
        }
        if (ferror(f)) {
                fprintf(stderr, "%s: read error\n", path);
                free(buf);
                fclose(f);
                return -EIO;
        }
        fclose(f);

        /* An exact-size copy, so ASan catches reads past the input as libFuzzer would. */
        {
                uint8_t *exact = malloc(size ? size : 1);
                if (!exact) {
                        free(buf);
                        return -ENOMEM;
                }
                memcpy(exact, buf, size);
                free(buf);
                LLVMFuzzerTestOneInput(exact, size);
                free(exact);
        }
        printf("ran %s (%zu bytes)\n", path, size);
        return 0;
}

static int run_dir(const char *dir) {
        struct dirent **entries = NULL;
        int n, r = 0, count = 0;

        n = scandir(dir, &entries, NULL, alphasort);
        if (n < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(errno));
                return -errno;
        }
        for (int i = 0; i < n; i++) {
                char path[4096];
                struct stat st;

                if (entries[i]->d_name[0] != '.' &&
                    snprintf(path, sizeof path, "%s/%s", dir, entries[i]->d_name) < (int) sizeof path &&
                    stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                        int k = run_file(path);
                        if (k < 0 && r == 0)
                                r = k;
                        count++;
                }
                free(entries[i]);
        }
        free(entries);
        if (count == 0) {
                fprintf(stderr, "%s: no inputs\n", dir);
                return r < 0 ? r : -ENOENT;
        }
        return r;
}

int main(int argc, char **argv) {
        int r = 0;

        if (argc < 2) {
                fprintf(stderr, "Usage: %s FILE|DIR...\n", argv[0]);
                return 2;
        }
        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);

        for (int i = 1; i < argc; i++) {
                struct stat st;
                int k;

                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
                        k = -errno;
                } else if (S_ISDIR(st.st_mode))
                        k = run_dir(argv[i]);
                else
                        k = run_file(argv[i]);
                if (k < 0 && r == 0)
                        r = k;
        }
        return r < 0 ? 1 : 0;
}
