/*
 * Baselines for `make bench`, measured in the same run as Consentry itself.
 *
 *   baseline read VAULT_DIR FIELD[,FIELD...]
 *       Reads every subject row of a vault with the SQLite C API and opens the requested sealed fields
 *       with libsodium, exactly as the vault's own scan does (unwrap the key-encryption key, unwrap each
 *       data key, open each requested field), and prints one JSON line with counts and seconds.
 *   baseline insert DB_PATH ROWS
 *       Inserts ROWS plain rows (integer key, 100-byte blob) in transactions of 10,000 into a new WAL
 *       database with synchronous=FULL: the cost of storing rows with nothing else to do.
 *   baseline store VAULT_DIR COUNT
 *       Stores COUNT profiles into an empty vault (made by `consentry init`) with the statements a profile import
 *       runs per record, on the vault's own schema and connection settings: look up the e-mail and customer id
 *       blind indexes, insert the subject row (random id, 73-byte wrapped key, 700-byte packed fields,
 *       32-byte audit secret) and its three identity rows, in transactions of 10,000. Random bytes stand in for
 *       hashes and ciphertexts: the floor of storing profiles, with no parsing, hashing or sealing.
 *   baseline seal COUNT
 *       Does the cryptography a profile import does per new subject, COUNT times on one thread: a random data key, ten
 *       field values sealed with XChaCha20-Poly1305 (random nonces drawn 256 at a time, associated data of subject,
 *       field and key version), the data key wrapped by a key-encryption key, three keyed BLAKE2b blind indexes and a
 *       32-byte random audit secret. Keys come from random bytes, not the vault's: the floor of preparing profiles,
 *       with no parsing, validation or normalization.
 *   baseline delete DB_PATH COUNT
 *       Deletes COUNT rows of the database `insert` made, one durable transaction each with secure_delete on,
 *       each followed by a WAL checkpoint(TRUNCATE): the floor under an erasure. Prints median and p99 seconds.
 *   baseline export VAULT_DIR OUT_PATH
 *       Streams every event row of the subject with the most events to OUT_PATH as JSON lines with stdio:
 *       the floor under an access export of that subject's events.
 *
 * It reads the master key from VAULT_DIR/keys/master.key and never prints key material or values.
 */
#include <sodium.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void be32(unsigned char *out, uint32_t v) { out[0] = v >> 24; out[1] = v >> 16; out[2] = v >> 8; out[3] = v; }
static void be64(unsigned char *out, uint64_t v) { for (int i = 0; i < 8; i++) out[i] = v >> (56 - 8 * i); }
static uint64_t rd(const unsigned char *p, int n) { uint64_t v = 0; for (int i = 0; i < n; i++) v = v << 8 | p[i]; return v; }

/* Opens version(1) || nonce(24) || ciphertext || tag(16). Returns plaintext length or -1. */
static long open_sealed(unsigned char *out, const unsigned char *sealed, size_t len, const unsigned char *ad, size_t adlen,
                        const unsigned char *key) {
    unsigned long long outlen;
    if (len < 41 || sealed[0] != 1) return -1;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &outlen, NULL, sealed + 25, len - 25, ad, adlen, sealed + 1, key) != 0) return -1;
    return (long)outlen;
}

#define MAX_KEKS 16
static int read_mode(const char *dir, char *fieldlist) {
    char path[4096];
    unsigned char master[32], wrapkey[32], keks[MAX_KEKS][32], datakey[32], buf[65536], ad[512];
    int kekver[MAX_KEKS], nkeks = 0;
    snprintf(path, sizeof path, "%s/keys/master.key", dir);
    FILE *f = fopen(path, "rb");
    if (!f || fread(master, 1, 32, f) != 32) { fprintf(stderr, "cannot read the master key\n"); return 1; }
    fclose(f);
    crypto_kdf_derive_from_key(wrapkey, 32, 1, "cnsKWRAP", master);
    sodium_memzero(master, 32);

    const char *names[32]; size_t namelen[32]; int nfields = 0;
    for (char *tok = strtok(fieldlist, ","); tok && nfields < 32; tok = strtok(NULL, ",")) { names[nfields] = tok; namelen[nfields++] = strlen(tok); }

    sqlite3 *db;
    snprintf(path, sizeof path, "%s/vault.sqlite", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) { fprintf(stderr, "cannot open the database\n"); return 1; }
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT version, wrapped FROM kek", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW && nkeks < MAX_KEKS) {
        int v = sqlite3_column_int(st, 0);
        memcpy(ad, "cns-kek-v1", 10); be32(ad + 10, v);
        if (open_sealed(keks[nkeks], sqlite3_column_blob(st, 1), sqlite3_column_bytes(st, 1), ad, 14, wrapkey) != 32) {
            fprintf(stderr, "a key-encryption key did not open\n"); return 1;
        }
        kekver[nkeks++] = v;
    }
    sqlite3_finalize(st);

    double start = now();
    long subjects = 0, values = 0, bytes = 0, failures = 0;
    sqlite3_prepare_v2(db, "SELECT id, kek_version, wrapped_key, key_version, fields FROM subject", -1, &st, NULL);
    while (sqlite3_step(st) == SQLITE_ROW) {
        uint64_t id = (uint64_t)sqlite3_column_int64(st, 0);
        int kv = sqlite3_column_int(st, 1), k = -1;
        for (int i = 0; i < nkeks; i++) if (kekver[i] == kv) k = i;
        memcpy(ad, "cns-wrap-v1", 11); be64(ad + 11, id); be32(ad + 19, kv);
        if (k < 0 || open_sealed(datakey, sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2), ad, 23, keks[k]) != 32) { failures++; continue; }
        uint32_t keyversion = sqlite3_column_int(st, 3);
        const unsigned char *p = sqlite3_column_blob(st, 4);
        int len = sqlite3_column_bytes(st, 4);
        if (len < 3 || p[0] != 1) { failures++; continue; }
        int count = (int)rd(p + 1, 2), off = 3;
        for (int e = 0; e < count && off < len; e++) {
            int nl = p[off++];
            const unsigned char *name = p + off; off += nl;
            off += 1 + 8;  /* source, observed-at */
            uint32_t sl = (uint32_t)rd(p + off, 4); off += 4;
            const unsigned char *sealed = p + off; off += sl;
            for (int i = 0; i < nfields; i++) {
                if (namelen[i] != (size_t)nl || memcmp(names[i], name, nl) != 0) continue;
                memcpy(ad, "cns-field-v1", 12); be64(ad + 12, id); be32(ad + 20, keyversion); memcpy(ad + 24, name, nl);
                long n = open_sealed(buf, sealed, sl, ad, 24 + nl, datakey);
                if (n < 0) failures++; else { values++; bytes += n; }
            }
        }
        sodium_memzero(datakey, 32);
        subjects++;
    }
    double seconds = now() - start;
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("{\"subjects\": %ld, \"values\": %ld, \"bytes\": %ld, \"failures\": %ld, \"seconds\": %.6f}\n", subjects, values, bytes, failures, seconds);
    return failures ? 1 : 0;
}

static int insert_mode(const char *path, long rows) {
    sqlite3 *db;
    remove(path);
    if (sqlite3_open(path, &db) != SQLITE_OK) return 1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)", NULL, NULL, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO t (id, v) VALUES (?, ?)", -1, &st, NULL);
    unsigned char blob[100];
    memset(blob, 7, sizeof blob);
    double start = now();
    for (long i = 0; i < rows; i++) {
        if (i % 10000 == 0) sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        sqlite3_bind_int64(st, 1, i + 1);
        sqlite3_bind_blob(st, 2, blob, sizeof blob, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
        if (i % 10000 == 9999 || i == rows - 1) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    double seconds = now() - start;
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("{\"rows\": %ld, \"seconds\": %.6f}\n", rows, seconds);
    return 0;
}

static int store_mode(const char *dir, long count) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vault.sqlite", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) return 1;
    sqlite3_exec(db, "PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA foreign_keys=ON; PRAGMA cache_size=-131072; "
                     "PRAGMA wal_autocheckpoint=8192", NULL, NULL, NULL);
    const char *sql[] = {
        "SELECT subject_id FROM identity WHERE hash = ?",
        "INSERT INTO subject (id, kek_version, wrapped_key, key_version, fields, created_at, updated_at, audit_secret) "
        "VALUES (?, 1, ?, 1, ?, ?, ?, ?)",
        "INSERT OR IGNORE INTO identity (hash, kind, subject_id, source, created_at) VALUES (?, ?, ?, 'crm', ?)",
        "INSERT OR IGNORE INTO shared_identity (hash, subject_id, kind, source, created_at) VALUES (?, ?, 'phone', 'crm', ?)",
    };
    sqlite3_stmt *st[4];
    for (int i = 0; i < 4; i++) {
        if (sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL) != SQLITE_OK) {
            fprintf(stderr, "store: %s\n", sqlite3_errmsg(db));
            return 1;
        }
    }
    /* The random stand-ins for hashes and ciphertexts are drawn before the clock starts: in the import, the preparing
     * thread makes them, not the writer this floor stands for. */
    struct profile { unsigned char hashes[3][32], wrapped[73], fields[700], secret[32]; int64_t id; };
    struct profile *profiles = malloc(sizeof *profiles * (size_t)(count > 0 ? count : 1));
    if (!profiles) return 1;
    randombytes_buf(profiles, sizeof *profiles * (size_t)count);
    for (long i = 0; i < count; i++) {
        int64_t id = profiles[i].id & INT64_MAX;
        profiles[i].id = id == 0 ? 1 : id;
    }
    long failures = 0;
    double start = now();
    for (long i = 0; i < count; i++) {
        if (i % 10000 == 0) sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        unsigned char (*hashes)[32] = profiles[i].hashes;
        unsigned char *wrapped = profiles[i].wrapped, *fields = profiles[i].fields, *secret = profiles[i].secret;
        int64_t id = profiles[i].id;
        int64_t t = 1795176000000 + i;
        /* The import looks up the e-mail and customer id; a phone number may be shared, so it is not looked up. */
        for (int k = 0; k < 2; k++) {
            sqlite3_bind_blob(st[0], 1, hashes[k], 32, SQLITE_STATIC);
            if (sqlite3_step(st[0]) == SQLITE_ROW) failures++;
            sqlite3_reset(st[0]);
        }
        sqlite3_bind_int64(st[1], 1, id);
        sqlite3_bind_blob(st[1], 2, wrapped, sizeof profiles[i].wrapped, SQLITE_STATIC);
        sqlite3_bind_blob(st[1], 3, fields, sizeof profiles[i].fields, SQLITE_STATIC);
        sqlite3_bind_int64(st[1], 4, t);
        sqlite3_bind_int64(st[1], 5, t);
        sqlite3_bind_blob(st[1], 6, secret, sizeof profiles[i].secret, SQLITE_STATIC);
        if (sqlite3_step(st[1]) != SQLITE_DONE) failures++;
        sqlite3_reset(st[1]);
        for (int k = 0; k < 2; k++) {
            sqlite3_bind_blob(st[2], 1, hashes[k], 32, SQLITE_STATIC);
            sqlite3_bind_text(st[2], 2, k == 0 ? "email" : "customer_id", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st[2], 3, id);
            sqlite3_bind_int64(st[2], 4, t);
            if (sqlite3_step(st[2]) != SQLITE_DONE) failures++;
            sqlite3_reset(st[2]);
        }
        sqlite3_bind_blob(st[3], 1, hashes[2], 32, SQLITE_STATIC);
        sqlite3_bind_int64(st[3], 2, id);
        sqlite3_bind_int64(st[3], 3, t);
        if (sqlite3_step(st[3]) != SQLITE_DONE) failures++;
        sqlite3_reset(st[3]);
        if (i % 10000 == 9999 || i == count - 1) sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    double seconds = now() - start;
    for (int i = 0; i < 4; i++) sqlite3_finalize(st[i]);
    free(profiles);
    sqlite3_close(db);
    printf("{\"profiles\": %ld, \"failures\": %ld, \"seconds\": %.6f}\n", count, failures, seconds);
    return failures ? 1 : 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int delete_mode(const char *path, long count) {
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) return 1;
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON", NULL, NULL, NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "DELETE FROM t WHERE id = ?", -1, &st, NULL);
    double *times = calloc(count, sizeof(double));
    for (long i = 0; i < count; i++) {
        double start = now();
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        sqlite3_bind_int64(st, 1, 1 + (i * 7919) % 1000000);
        sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
        times[i] = now() - start;
    }
    qsort(times, count, sizeof(double), cmp_double);
    printf("{\"deletes\": %ld, \"median\": %.6f, \"p99\": %.6f}\n", count, times[count / 2], times[(count * 99) / 100 < count ? (count * 99) / 100 : count - 1]);
    free(times);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 0;
}

static int export_mode(const char *dir, const char *out_path) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vault.sqlite", dir);
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return 1;
    sqlite3_stmt *top, *st;
    sqlite3_prepare_v2(db, "SELECT subject_id FROM event GROUP BY subject_id ORDER BY count(*) DESC LIMIT 1", -1, &top, NULL);
    if (sqlite3_step(top) != SQLITE_ROW) return 1;
    sqlite3_int64 subject = sqlite3_column_int64(top, 0);
    sqlite3_finalize(top);
    double start = now();
    FILE *out = fopen(out_path, "w");
    if (!out) return 1;
    sqlite3_prepare_v2(db, "SELECT type, time, item_id, category, amount, currency, campaign_id FROM event WHERE subject_id = ? ORDER BY time, id",
        -1, &st, NULL);
    sqlite3_bind_int64(st, 1, subject);
    long rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        fprintf(out, "{\"type\":\"%s\",\"time\":%lld,\"item_id\":\"%s\",\"category\":\"%s\",\"amount\":%g,\"currency\":\"%s\"}\n",
            (const char *)sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1),
            sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "",
            sqlite3_column_text(st, 3) ? (const char *)sqlite3_column_text(st, 3) : "", sqlite3_column_double(st, 4),
            sqlite3_column_text(st, 5) ? (const char *)sqlite3_column_text(st, 5) : "");
        rows++;
    }
    fflush(out);
    fsync(fileno(out));
    fclose(out);
    double seconds = now() - start;
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("{\"rows\": %ld, \"seconds\": %.6f}\n", rows, seconds);
    return 0;
}

/* The per-profile cryptography of an import (see the header). Values are the lengths of typical demo fields. */
static int seal_mode(long count) {
    static const char *names[10] = {"email", "customer_id", "first_name", "last_name", "phone",
                                    "birth_date", "city", "country", "language", "loyalty_tier"};
    static const char *values[10] = {"bruno.ivanova.1@mail.example", "C00000001", "Bruno", "Ivanova", "+491608108359",
                                     "1987-12-21", "Hamburg", "DE", "de", "bronze"};
    unsigned char kek[32], index_key[32], data_key[32], secret[32], hash[32], ad[128], sealed[256], wrapped[128];
    unsigned char nonces[256 * 24];
    size_t used = sizeof nonces;
    unsigned long long sealed_len;
    long checksum = 0;
    randombytes_buf(kek, sizeof kek);
    randombytes_buf(index_key, sizeof index_key);
    double start = now();
    for (long i = 0; i < count; i++) {
        randombytes_buf(data_key, sizeof data_key);
        uint64_t subject = randombytes_random();
        for (int f = 0; f < 11; f++) {
            if (used == sizeof nonces) { randombytes_buf(nonces, sizeof nonces); used = 0; }
            sealed[0] = 1;
            memcpy(sealed + 1, nonces + used, 24);
            sodium_memzero(nonces + used, 24);
            used += 24;
            be64(ad, subject);
            if (f < 10) {
                size_t name_len = strlen(names[f]);
                memcpy(ad + 8, names[f], name_len);
                be32(ad + 8 + name_len, 1);
                crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + 25, &sealed_len, (const unsigned char *)values[f], strlen(values[f]),
                                                           ad, 12 + name_len, NULL, sealed + 1, data_key);
            } else {
                be32(ad + 8, 1);
                crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped + 25, &sealed_len, data_key, sizeof data_key, ad, 12, NULL,
                                                           sealed + 1, kek);
            }
            checksum += sealed[25];
        }
        for (int k = 0; k < 3; k++) {
            crypto_generichash(hash, sizeof hash, (const unsigned char *)values[k == 2 ? 4 : k], strlen(values[k == 2 ? 4 : k]),
                               index_key, sizeof index_key);
            checksum += hash[0];
        }
        randombytes_buf(secret, sizeof secret);
        sodium_memzero(data_key, sizeof data_key);
    }
    double seconds = now() - start;
    printf("{\"profiles\": %ld, \"seconds\": %.6f, \"checksum\": %ld}\n", count, seconds, checksum);
    return 0;
}

int main(int argc, char **argv) {
    if (sodium_init() < 0) return 1;
    if (argc == 4 && strcmp(argv[1], "read") == 0) return read_mode(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "insert") == 0) return insert_mode(argv[2], atol(argv[3]));
    if (argc == 4 && strcmp(argv[1], "store") == 0) return store_mode(argv[2], atol(argv[3]));
    if (argc == 3 && strcmp(argv[1], "seal") == 0) return seal_mode(atol(argv[2]));
    if (argc == 4 && strcmp(argv[1], "delete") == 0) return delete_mode(argv[2], atol(argv[3]));
    if (argc == 4 && strcmp(argv[1], "export") == 0) return export_mode(argv[2], argv[3]);
    fprintf(stderr, "usage: baseline read VAULT_DIR FIELDS | insert DB_PATH ROWS | store VAULT_DIR COUNT | seal COUNT | delete DB_PATH COUNT | export VAULT_DIR OUT\n");
    return 64;
}
