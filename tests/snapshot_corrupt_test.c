/* snapshot_corrupt_test.c - hostile input for the snapshot format: files
 * truncated at every section boundary and at random offsets, every byte
 * flipped, foreign files, crafted lengths with valid checksums, corrupt
 * _metadata files. Each must give RILL_ECORRUPT naming the file (or
 * RILL_ENOTFOUND when missing), never a crash, a hang or a success. */
#include "snapshot_common.h"

TestSuite(snap_corrupt, .init = mk_tmp, .fini = rm_tmp);
TestSuite(snap_meta_corrupt, .init = mk_tmp, .fini = rm_tmp);

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Both the full read and rill__snap_verify reject path as corrupt, with
 * messages naming it. */
static void expect_corrupt(const char *path, const char *why)
{
    char err[RILL__ERRMSG_MAX] = "";
    int rc = read_all(path, err);
    cr_assert_eq(rc, RILL_ECORRUPT, "%s: read gives %d (%s)", why, rc, err);
    cr_assert_not_null(strstr(err, path), "%s: message '%s' does not name the file", why, err);
    err[0] = '\0';
    rc = rill__snap_verify(path, NULL, err);
    cr_assert_eq(rc, RILL_ECORRUPT, "%s: verify gives %d (%s)", why, rc, err);
    cr_assert_not_null(strstr(err, path), "%s: message '%s' does not name the file", why, err);
}

/* ---- corrupt, truncated and foreign files -------------------------------- */

Test(snap_corrupt, truncated_at_every_section_boundary)
{
    const char *p = tpath("snap"), *q = tpath("cut");
    write_sample(p);
    size_t len, b[2 * N_SAMPLE + 2];
    size_t nb = sample_bounds(b);
    unsigned char *bytes = slurp(p, &len);
    cr_assert_eq(b[nb - 1], len, "the sample's size follows the manual");
    size_t extra[] = {0, 1, 7, 8, 23, len - 33, len - 32, len - 8, len - 1};
    for (size_t i = 0; i + 1 < nb; i++) {
        spit(q, bytes, b[i]);
        char why[64];
        snprintf(why, sizeof why, "cut at boundary %zu", b[i]);
        expect_corrupt(q, why);
    }
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        spit(q, bytes, extra[i]);
        expect_corrupt(q, "cut near an end");
    }
    free(bytes);
}

Test(snap_corrupt, truncated_at_random_offsets)
{
    const char *p = tpath("snap"), *q = tpath("cut");
    write_sample(p);
    size_t len;
    unsigned char *bytes = slurp(p, &len);
    for (int i = 0; i < 64; i++) {
        size_t at = (size_t)(next_rand() % len);
        spit(q, bytes, at);
        char why[64];
        snprintf(why, sizeof why, "cut at %zu", at);
        expect_corrupt(q, why);
    }
    free(bytes);
}

static void flip_every_byte(const char *p, unsigned char mask, int meta)
{
    const char *q = tpath("flipped");
    size_t len;
    unsigned char *bytes = slurp(p, &len);
    for (size_t i = 0; i < len; i++) {
        bytes[i] ^= mask;
        spit(q, bytes, len);
        bytes[i] ^= mask;
        char why[64];
        snprintf(why, sizeof why, "byte %zu ^ 0x%02x", i, mask);
        if (!meta) {
            expect_corrupt(q, why);
        } else {
            rill__snap_meta *m = NULL;
            char err[RILL__ERRMSG_MAX] = "";
            cr_assert_eq(rill__snap_meta_read(q, &m, err), RILL_ECORRUPT, "%s: %s", why, err);
            cr_assert_null(m);
            cr_assert_not_null(strstr(err, q), "%s: %s", why, err);
        }
    }
    free(bytes);
}

Test(snap_corrupt, every_flipped_byte_is_detected)
{
    const char *p = tpath("snap");
    write_sample(p);
    flip_every_byte(p, 0xff, 0);
}

Test(snap_corrupt, every_flipped_low_bit_is_detected)
{
    const char *p = tpath("snap");
    write_sample(p);
    flip_every_byte(p, 0x01, 0);
}

Test(snap_corrupt, corrupt_payload_fails_the_read_that_ends_it)
{
    const char *p = tpath("snap");
    write_sample(p);
    size_t len;
    unsigned char *bytes = slurp(p, &len);
    size_t key_a = 24 + sec_size(&sample[0]) + 24 + 7 + 5 + 4; /* the key "a" */
    cr_assert_eq(bytes[key_a], 'a');
    bytes[key_a] = 'A';
    spit(p, bytes, len);
    free(bytes);
    rill__snap_reader *r;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_reader_open(&r, p, err), RILL_OK, "%s", err);
    rill__snap_section s;
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    const void *k, *v;
    size_t kl, vl;
    /* The first entry comes out unverified (callers stage it)... */
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 1);
    cr_assert_eq(memcmp(k, "A", 1), 0);
    /* ...and the call that ends the section reports the mismatch. */
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), RILL_ECORRUPT);
    const char *msg = rill__snap_reader_errmsg(r);
    cr_assert_not_null(strstr(msg, p), "%s", msg);
    cr_assert_not_null(strstr(msg, "section 1 (kind 2, uid 'counter', state 'count')"), "%s", msg);
    cr_assert_not_null(strstr(msg, "checksum mismatch"), "%s", msg);
    /* Every later call gives the error. */
    cr_assert_eq(rill__snap_reader_next(r, &s), RILL_ECORRUPT);
    rill__snap_reader_close(r);
}

Test(snap_corrupt, foreign_files)
{
    const char *p = tpath("foreign");
    char err[RILL__ERRMSG_MAX];
    static const struct {
        const char *bytes;
        size_t len;
        const char *says;
    } cases[] = {
        {"", 0, "empty file"},
        {"hello, world\nthis is text\n", 27, "bad magic"},
        {"RILL", 4, "truncated"},
        {"RILLSNP\0", 8, "truncated"},
        {"RILLSNQ\0\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32, "bad magic"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spit(p, cases[i].bytes, cases[i].len);
        expect_corrupt(p, cases[i].says);
        cr_assert_eq(read_all(p, err), RILL_ECORRUPT);
        cr_assert_not_null(strstr(err, cases[i].says), "case %zu: %s", i, err);
    }
    unsigned char rnd[4096];
    for (int round = 0; round < 16; round++) {
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)next_rand();
        spit(p, rnd, sizeof rnd);
        expect_corrupt(p, "random bytes");
    }
}

Test(snap_corrupt, a_directory_is_ecorrupt)
{
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(read_all(tmpdir, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
}

Test(snap_corrupt, a_fifo_is_ecorrupt_without_blocking)
{
    const char *p = tpath("fifo");
    cr_assert_eq(mkfifo(p, 0600), 0);
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(read_all(p, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);
}

Test(snap_corrupt, missing_file_is_enotfound)
{
    const char *p = tpath("absent");
    rill__snap_reader *r = (rill__snap_reader *)1;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_reader_open(&r, p, err), RILL_ENOTFOUND);
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, p), "%s", err);
    cr_assert_eq(rill__snap_verify(p, NULL, err), RILL_ENOTFOUND);
    cr_assert_eq(rill__snap_verify(tpath("no/dir"), NULL, err), RILL_ENOTFOUND);
}

/* Rewrite a header or trailer field and fix the checksums that cover it,
 * as a hostile or future writer would. */
static void refresh_sums(unsigned char *b, size_t len)
{
    rill__snap_put64(b + 16, XXH3_64bits(b, 16));
    size_t table = (size_t)rill__snap_get64(b + len - 32);
    size_t n = (len - 32) - table;
    unsigned char *d = malloc(24 + n + 16);
    cr_assert_not_null(d);
    memcpy(d, b, 24);
    memcpy(d + 24, b + table, n + 16);
    rill__snap_put64(b + len - 16, XXH3_64bits(d, 24 + n + 16));
    free(d);
}

Test(snap_corrupt, unknown_version_is_named)
{
    const char *p = tpath("snap");
    write_sample(p);
    size_t len;
    unsigned char *b = slurp(p, &len);
    rill__snap_put32(b + 8, 2);
    refresh_sums(b, len);
    spit(p, b, len);
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(read_all(p, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "unknown format version 2"), "%s", err);
    free(b);
}

Test(snap_corrupt, unknown_flags_are_ecorrupt)
{
    const char *p = tpath("snap");
    write_sample(p);
    size_t len;
    unsigned char *b = slurp(p, &len);
    rill__snap_put32(b + 12, 0x80);
    refresh_sums(b, len);
    spit(p, b, len);
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(read_all(p, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "unknown header flags 0x80"), "%s", err);
    free(b);
}

Test(snap_corrupt, huge_section_count_with_valid_checksums)
{
    const char *p = tpath("snap");
    write_sample(p);
    size_t len;
    unsigned char *b = slurp(p, &len);
    rill__snap_put64(b + len - 24, (uint64_t)1 << 60);
    refresh_sums(b, len);
    spit(p, b, len);
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(read_all(p, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "trailer does not match the file size"), "%s", err);
    free(b);
}

Test(snap_corrupt, huge_section_size_with_valid_checksums)
{
    const char *p = tpath("snap");
    write_sample(p);
    size_t len;
    unsigned char *b = slurp(p, &len);
    size_t table = (size_t)rill__snap_get64(b + len - 32);
    rill__snap_put64(b + table + 8, UINT64_MAX - 7); /* entry 0's size */
    refresh_sums(b, len);
    spit(p, b, len);
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(read_all(p, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "section table entry 0 is inconsistent"), "%s", err);
    free(b);
}

Test(snap_corrupt, entry_longer_than_its_payload)
{
    const char *p = tpath("kvbad");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "op", "s", 0, 0), RILL_OK);
    cr_assert_eq(rill__snap_writer_append(w,
                                          "\xff\xff\xff\xff"
                                          "abc",
                                          7),
                 RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
    rill__snap_reader *r;
    cr_assert_eq(rill__snap_reader_open(&r, p, err), RILL_OK, "%s", err);
    rill__snap_section s;
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    const void *k, *v;
    size_t kl, vl;
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), RILL_ECORRUPT);
    cr_assert_not_null(strstr(rill__snap_reader_errmsg(r), "crosses the end of the payload"), "%s",
                       rill__snap_reader_errmsg(r));
    rill__snap_reader_close(r);
}

Test(snap_corrupt, metadata_file_is_not_snapshot_data)
{
    const char *p = tpath("_metadata");
    rill__snap_meta m = {1, 2, 0, NULL, NULL, 0};
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_meta_write(p, &m, err), RILL_OK, "%s", err);
    cr_assert_eq(read_all(p, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "a checkpoint _metadata file, not snapshot data"), "%s", err);
    cr_assert_eq(rill__snap_verify(p, NULL, err), RILL_OK, "%s", err);
}

/* ---- checkpoint metadata ----------------------------------------------------- */

Test(snap_meta_corrupt, every_flipped_byte_is_detected)
{
    const char *p = tpath("_metadata");
    rill__snap_meta m = {42, 1700000000123, 3, mf, "p=2", 3};
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_meta_write(p, &m, err), RILL_OK, "%s", err);
    flip_every_byte(p, 0xff, 1);
}

Test(snap_meta_corrupt, truncated_at_every_length)
{
    const char *p = tpath("_metadata"), *q = tpath("cut");
    rill__snap_meta m = {42, 1700000000123, 3, mf, "p=2", 3};
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_meta_write(p, &m, err), RILL_OK, "%s", err);
    size_t len;
    unsigned char *bytes = slurp(p, &len);
    for (size_t at = 0; at < len; at++) {
        spit(q, bytes, at);
        rill__snap_meta *got = NULL;
        cr_assert_eq(rill__snap_meta_read(q, &got, err), RILL_ECORRUPT, "cut at %zu: %s", at, err);
        cr_assert_not_null(strstr(err, q), "%s", err);
    }
    free(bytes);
}

Test(snap_meta_corrupt, missing_is_enotfound_and_data_is_ecorrupt)
{
    rill__snap_meta *got = NULL;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_meta_read(tpath("_metadata"), &got, err), RILL_ENOTFOUND);
    cr_assert_not_null(strstr(err, tpath("_metadata")), "%s", err);
    const char *p = tpath("data");
    write_sample(p);
    cr_assert_eq(rill__snap_meta_read(p, &got, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "snapshot data, not a checkpoint _metadata file"), "%s", err);
    cr_assert_null(got);
}

Test(snap_meta_corrupt, hostile_file_name_is_ecorrupt)
{
    /* A _metadata file with valid checksums naming a file outside the
     * checkpoint directory. */
    const char *p = tpath("_metadata");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    const uint16_t NK = RILL__SNAP_NO_KG;
    cr_assert_eq(rill__snap_writer_open_flags(&w, p, RILL__SNAP_FLAG_META, err), RILL_OK, "%s",
                 err);
    cr_assert_eq(rill__snap_writer_begin(w, RILL__SNAP_M_CHECKPOINT, "", "", NK, NK), RILL_OK);
    cr_assert_eq(rill__snap_writer_append(w, "0123456789abcdef", 16), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_begin(w, RILL__SNAP_M_FILE, "", "", NK, NK), RILL_OK);
    cr_assert_eq(rill__snap_writer_append(w, "0123456789abcdef../escape", 25), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_begin(w, RILL__SNAP_M_JOB, "", "", NK, NK), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
    rill__snap_meta *got = NULL;
    cr_assert_eq(rill__snap_meta_read(p, &got, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, "bad file name"), "%s", err);
    cr_assert_null(got);
}
