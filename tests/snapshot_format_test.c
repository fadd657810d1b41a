/* snapshot_format_test.c - the snapshot file format (src/snapshot): round
 * trips of sections, entries and _metadata files, the byte layout of
 * rill-snapshot(5), atomic writes, writer misuse, and allocation failures.
 * Corrupt and foreign files: snapshot_corrupt_test.c. */
#include "snapshot_common.h"

TestSuite(snap_roundtrip, .init = mk_tmp, .fini = rm_tmp);
TestSuite(snap_layout, .init = mk_tmp, .fini = rm_tmp);
TestSuite(snap_writer, .init = mk_tmp, .fini = rm_tmp);
TestSuite(snap_meta, .init = mk_tmp, .fini = rm_tmp);
TestSuite(snap_alloc, .init = mk_tmp, .fini = rm_tmp);

/* ---- round trips ----------------------------------------------------------- */

Test(snap_roundtrip, sections_of_every_kind_with_empty_payloads)
{
    const char *p = tpath("snap");
    write_sample(p);
    rill__snap_reader *r;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_reader_open(&r, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_reader_count(r), N_SAMPLE);
    rill__snap_section s;
    for (size_t i = 0; i < N_SAMPLE; i++) {
        const spec *e = &sample[i];
        cr_assert_eq(rill__snap_reader_next(r, &s), 1);
        cr_assert_eq(s.index, i);
        cr_assert_eq(s.kind, e->kind);
        cr_assert_str_eq(s.uid, e->uid);
        cr_assert_eq(s.uid_len, strlen(e->uid));
        cr_assert_str_eq(s.state, e->state);
        cr_assert_eq(s.state_len, strlen(e->state));
        cr_assert_eq(s.kg_first, e->kf);
        cr_assert_eq(s.kg_last, e->kl);
        cr_assert_eq(s.payload_len, e->len);
        unsigned char buf[64];
        size_t got, total = 0;
        do {
            cr_assert_eq(rill__snap_reader_read(r, buf + total, 5, &got), RILL_OK);
            total += got;
        } while (got > 0);
        cr_assert_eq(total, e->len);
        if (e->payload)
            cr_assert_eq(memcmp(buf, e->payload, e->len), 0);
        else
            cr_assert_eq(memcmp(buf, "\1\0\0\0a\1\0\0\0001\2\0\0\0bb\2\0\0\00022", 22), 0);
    }
    cr_assert_eq(rill__snap_reader_next(r, &s), 0);
    cr_assert_eq(rill__snap_reader_next(r, &s), 0);
    rill__snap_reader_close(r);
}

static unsigned char pattern(uint64_t i)
{
    return (unsigned char)((i ^ (i >> 9) ^ (i >> 17)) * 31);
}

Test(snap_roundtrip, fifty_megabytes_streamed)
{
    const uint64_t big = (uint64_t)50 << 20;
    const char *p = tpath("big");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "op", "st", 0, 127), RILL_OK);
    static unsigned char chunk[65536 + 7];
    for (uint64_t off = 0; off < big;) {
        size_t n = big - off < sizeof chunk ? (size_t)(big - off) : sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(off + i);
        cr_assert_eq(rill__snap_writer_append(w, chunk, n), RILL_OK);
        off += n;
    }
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_SOURCE, "src", "", RILL__SNAP_NO_KG,
                                                 RILL__SNAP_NO_KG),
                 RILL_OK);
    cr_assert_eq(rill__snap_writer_append(w, "after", 5), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    rill__snap_fileinfo fi;
    cr_assert_eq(rill__snap_writer_commit(w, &fi, err), RILL_OK, "%s", err);
    size_t want = 24 + (24 + 4 + big + 8) + (24 + 3 + 5 + 8) + 2 * 32 + 32;
    cr_assert_eq(fi.size, want);
    cr_assert_eq(file_size(p), want);

    rill__snap_reader *r;
    cr_assert_eq(rill__snap_reader_open(&r, p, err), RILL_OK, "%s", err);
    rill__snap_section s;
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    cr_assert_eq(s.payload_len, big);
    static unsigned char in[100003];
    uint64_t off = 0, bad = UINT64_MAX;
    size_t got;
    do {
        cr_assert_eq(rill__snap_reader_read(r, in, sizeof in, &got), RILL_OK, "%s",
                     rill__snap_reader_errmsg(r));
        for (size_t i = 0; i < got && bad == UINT64_MAX; i++)
            if (in[i] != pattern(off + i))
                bad = off + i;
        off += got;
    } while (got > 0);
    cr_assert_eq(bad, UINT64_MAX, "payload differs at byte %" PRIu64, bad);
    cr_assert_eq(off, big);
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    cr_assert_str_eq(s.uid, "src");
    cr_assert_eq(rill__snap_reader_read(r, in, sizeof in, &got), RILL_OK);
    cr_assert_eq(got, 5);
    cr_assert_eq(memcmp(in, "after", 5), 0);
    cr_assert_eq(rill__snap_reader_next(r, &s), 0);
    rill__snap_reader_close(r);
    rill__snap_fileinfo vi;
    cr_assert_eq(rill__snap_verify(p, &vi, err), RILL_OK, "%s", err);
    cr_assert_eq(vi.digest, fi.digest);
}

Test(snap_roundtrip, key_value_entries)
{
    const char *p = tpath("kv");
    size_t vbig = 1 << 20;
    unsigned char *big = malloc(vbig);
    cr_assert_not_null(big);
    for (size_t i = 0; i < vbig; i++)
        big[i] = pattern(i);
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "op", "map", 3, 9), RILL_OK);
    cr_assert_eq(rill__snap_writer_kv(w, "k1", 2, "v1", 2), RILL_OK);
    cr_assert_eq(rill__snap_writer_kv(w, NULL, 0, "empty key", 9), RILL_OK);
    cr_assert_eq(rill__snap_writer_kv(w, "empty value", 11, NULL, 0), RILL_OK);
    cr_assert_eq(rill__snap_writer_kv(w, "\0\1\0", 3, "\xff\0", 2), RILL_OK);
    cr_assert_eq(rill__snap_writer_kv(w, "big", 3, big, vbig), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);

    rill__snap_reader *r;
    cr_assert_eq(rill__snap_reader_open(&r, p, err), RILL_OK, "%s", err);
    rill__snap_section s;
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    cr_assert_eq(s.payload_len, 5 * 8 + 2 + 2 + 9 + 11 + 3 + 2 + 3 + vbig);
    const void *k, *v;
    size_t kl, vl;
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 1);
    cr_assert(kl == 2 && vl == 2 && !memcmp(k, "k1", 2) && !memcmp(v, "v1", 2));
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 1);
    cr_assert(kl == 0 && vl == 9 && !memcmp(v, "empty key", 9));
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 1);
    cr_assert(kl == 11 && vl == 0 && !memcmp(k, "empty value", 11));
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 1);
    cr_assert(kl == 3 && vl == 2 && !memcmp(k, "\0\1\0", 3) && !memcmp(v, "\xff\0", 2));
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 1);
    cr_assert(kl == 3 && vl == vbig && !memcmp(k, "big", 3) && !memcmp(v, big, vbig));
    cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 0);
    cr_assert_eq(rill__snap_reader_next(r, &s), 0);
    rill__snap_reader_close(r);
    free(big);
}

Test(snap_roundtrip, next_skips_an_unread_section)
{
    const char *p = tpath("snap");
    write_sample(p);
    rill__snap_reader *r;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_reader_open(&r, p, err), RILL_OK, "%s", err);
    rill__snap_section s;
    unsigned char b[4];
    size_t got;
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    cr_assert_eq(rill__snap_reader_read(r, b, 4, &got), RILL_OK); /* 4 of 14 bytes */
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);               /* the kv section, unread */
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    cr_assert_eq(rill__snap_reader_next(r, &s), 1);
    cr_assert_eq(s.kind, RILL__SNAP_OPLIST);
    cr_assert_eq(rill__snap_reader_read(r, b, 4, &got), RILL_OK);
    cr_assert_eq(got, 3);
    cr_assert_eq(memcmp(b, "xyz", 3), 0);
    rill__snap_reader_close(r);
}

Test(snap_roundtrip, a_file_without_sections)
{
    const char *p = tpath("none");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    rill__snap_fileinfo fi;
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_commit(w, &fi, err), RILL_OK, "%s", err);
    cr_assert_eq(fi.size, 24 + 32);
    cr_assert_eq(read_all(p, err), RILL_OK, "%s", err);
}

/* ---- the layout of rill-snapshot(5) ------------------------------------- */

static size_t put(unsigned char *b, size_t at, uint64_t v, int width)
{
    for (int i = 0; i < width; i++)
        b[at + (size_t)i] = (unsigned char)(v >> (8 * i));
    return at + (size_t)width;
}

Test(snap_layout, bytes_match_the_manual)
{
    const char *p = tpath("tiny");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "u", "st", 1, 2), RILL_OK);
    cr_assert_eq(rill__snap_writer_append(w, "hi", 2), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    rill__snap_fileinfo fi;
    cr_assert_eq(rill__snap_writer_commit(w, &fi, err), RILL_OK, "%s", err);

    unsigned char x[200];
    size_t n = 0;
    memcpy(x, "RILLSNP\0", 8);
    n = put(x, 8, 1, 4); /* version */
    n = put(x, n, 0, 4); /* flags */
    n = put(x, n, XXH3_64bits(x, 16), 8);
    size_t sec = n;
    n = put(x, n, 2, 4); /* kind: keyed state */
    n = put(x, n, 0, 4); /* reserved */
    n = put(x, n, 1, 2); /* first key group */
    n = put(x, n, 2, 2); /* last key group */
    n = put(x, n, 1, 2); /* uid length */
    n = put(x, n, 2, 2); /* state length */
    n = put(x, n, 2, 8); /* payload length */
    memcpy(x + n, "ust", 3);
    n += 3;
    size_t head_len = n - sec;
    uint64_t hsum = XXH3_64bits(x + sec, head_len);
    unsigned char both[64];
    memcpy(both, "hi", 2);
    memcpy(both + 2, x + sec, head_len);
    uint64_t sum = XXH3_64bits(both, 2 + head_len); /* payload, then header */
    memcpy(x + n, "hi", 2);
    n = put(x, n + 2, sum, 8);
    size_t table = n;
    n = put(x, n, sec, 8);
    n = put(x, n, table - sec, 8);
    n = put(x, n, hsum, 8);
    n = put(x, n, sum, 8);
    size_t tr = n;
    n = put(x, n, table, 8);
    n = put(x, n, 1, 8);
    unsigned char dig[200];
    memcpy(dig, x, 24);
    memcpy(dig + 24, x + table, 32 + 16);
    uint64_t digest = XXH3_64bits(dig, 24 + 32 + 16);
    n = put(x, n, digest, 8);
    memcpy(x + n, "RILLEND\0", 8);
    n += 8;
    cr_assert_eq(tr + 32, n);

    size_t len;
    unsigned char *got = slurp(p, &len);
    cr_assert_eq(len, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], x[i], "byte %zu is 0x%02x, the manual says 0x%02x", i, got[i], x[i]);
    cr_assert_eq(fi.digest, digest);
    cr_assert_eq(fi.size, n);
    free(got);
}

/* ---- writer ---------------------------------------------------------------- */

Test(snap_writer, commit_is_atomic)
{
    const char *p = tpath("atomic"), *tmp = tpath("atomic.tmp");
    rill__snap_fileinfo old = write_sample(p);
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_INFO, "new", "", RILL__SNAP_NO_KG,
                                                 RILL__SNAP_NO_KG),
                 RILL_OK);
    cr_assert_eq(rill__snap_writer_append(w, "new content", 11), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert(exists(tmp));
    rill__snap_fileinfo now;
    cr_assert_eq(rill__snap_verify(p, &now, err), RILL_OK, "%s", err);
    cr_assert_eq(now.digest, old.digest, "the old file stays until commit");
    rill__snap_fileinfo fi;
    cr_assert_eq(rill__snap_writer_commit(w, &fi, err), RILL_OK, "%s", err);
    cr_assert_not(exists(tmp));
    cr_assert_eq(rill__snap_verify(p, &now, err), RILL_OK, "%s", err);
    cr_assert_eq(now.digest, fi.digest);
    cr_assert_neq(now.digest, old.digest);
    cr_assert_eq(now.size, file_size(p));
}

Test(snap_writer, nothing_at_the_path_before_commit)
{
    const char *p = tpath("fresh"), *tmp = tpath("fresh.tmp");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_not(exists(p));
    cr_assert(exists(tmp));
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
    cr_assert(exists(p));
    cr_assert_not(exists(tmp));
}

Test(snap_writer, abort_leaves_no_file)
{
    const char *p = tpath("gone"), *tmp = tpath("gone.tmp");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "a", "b", 0, 0), RILL_OK);
    cr_assert_eq(rill__snap_writer_kv(w, "k", 1, "v", 1), RILL_OK);
    rill__snap_writer_abort(w);
    cr_assert_not(exists(p));
    cr_assert_not(exists(tmp));
    rill__snap_writer_abort(NULL);
}

Test(snap_writer, abort_keeps_the_previous_file)
{
    const char *p = tpath("kept");
    rill__snap_fileinfo old = write_sample(p);
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    rill__snap_writer_abort(w);
    rill__snap_fileinfo now;
    cr_assert_eq(rill__snap_verify(p, &now, err), RILL_OK, "%s", err);
    cr_assert_eq(now.digest, old.digest);
    cr_assert_not(exists(tpath("kept.tmp")));
}

Test(snap_writer, misuse_is_einval)
{
    const char *p = tpath("misuse");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    const uint16_t NK = RILL__SNAP_NO_KG;
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_append(w, "x", 1), RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_kv(w, "x", 1, "y", 1), RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_section_begin(w, 99, "u", "s", NK, NK), RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_M_FILE, "", "", NK, NK),
                 RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "u", "s", 5, 3), RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "u", "s", NK, 3),
                 RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "u", "s", 0, 40000),
                 RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, NULL, "s", 0, 1),
                 RILL_EINVAL);
    cr_assert_not_null(strstr(rill__snap_writer_errmsg(w), p));
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "u", "s", 0, 1), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "u", "s", 0, 1), RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_append(w, NULL, 3), RILL_EINVAL);
    /* Committing with a section open fails and leaves nothing behind. */
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_EINVAL);
    cr_assert_not_null(strstr(err, "section is still open"), "%s", err);
    cr_assert_not(exists(p));
    cr_assert_not(exists(tpath("misuse.tmp")));
}

Test(snap_writer, names_longer_than_the_limit_are_einval)
{
    const char *p = tpath("long");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    char *name = malloc(RILL__SNAP_NAME_MAX + 2);
    cr_assert_not_null(name);
    memset(name, 'n', RILL__SNAP_NAME_MAX + 1);
    name[RILL__SNAP_NAME_MAX + 1] = '\0';
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, name, "", 0, 0), RILL_EINVAL);
    name[RILL__SNAP_NAME_MAX] = '\0'; /* exactly the limit */
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, name, name, 0, 0), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
    cr_assert_eq(read_all(p, err), RILL_OK, "%s", err);
    free(name);
}

Test(snap_writer, missing_directory_is_eio)
{
    const char *p = tpath("no/such/dir/snap");
    rill__snap_writer *w = (rill__snap_writer *)1;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_EIO);
    cr_assert_null(w);
    cr_assert_not_null(strstr(err, p), "%s", err);
}

Test(snap_writer, empty_path_is_einval)
{
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, "", err), RILL_EINVAL);
    cr_assert_eq(rill__snap_writer_open(&w, NULL, err), RILL_EINVAL);
    cr_assert_null(w);
}

Test(snap_layout, the_manual_example_byte_for_byte)
{
    /* EXAMPLES of rill-snapshot(5). */
    static const unsigned char page[134] = {
        0x52, 0x49, 0x4c, 0x4c, 0x53, 0x4e, 0x50, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x71, 0x09, 0xa2, 0x39, 0x92, 0x65, 0xb4, 0x9f, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x05, 0x00, 0x05, 0x00, 0x03, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x63, 0x6e, 0x74, 0x6e, 0x01, 0x00, 0x00, 0x00, 0x6b, 0x01, 0x00, 0x00,
        0x00, 0x76, 0xaa, 0x85, 0xd9, 0xc3, 0x8e, 0x1b, 0xb4, 0x1d, 0x18, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0xa8, 0x1c, 0x43,
        0xee, 0x49, 0xee, 0x51, 0xaa, 0x85, 0xd9, 0xc3, 0x8e, 0x1b, 0xb4, 0x1d, 0x46, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x82,
        0x4e, 0x32, 0x48, 0x26, 0x04, 0xe1, 0x52, 0x49, 0x4c, 0x4c, 0x45, 0x4e, 0x44, 0x00,
    };
    const char *p = tpath("example");
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, p, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "cnt", "n", 5, 5), RILL_OK);
    cr_assert_eq(rill__snap_writer_kv(w, "k", 1, "v", 1), RILL_OK);
    cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
    size_t len;
    unsigned char *got = slurp(p, &len);
    cr_assert_eq(len, sizeof page);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(got[i], page[i], "byte %zu is 0x%02x, the manual shows 0x%02x", i, got[i],
                     page[i]);
    free(got);
}

/* ---- checkpoint metadata ----------------------------------------------------- */

Test(snap_meta, round_trip)
{
    const char *p = tpath("_metadata");
    rill__snap_meta m = {42, 1700000000123, 3, mf, "parallelism=2;max=128", 21};
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_meta_write(p, &m, err), RILL_OK, "%s", err);
    cr_assert_not(exists(tpath("_metadata.tmp")));
    rill__snap_meta *got;
    cr_assert_eq(rill__snap_meta_read(p, &got, err), RILL_OK, "%s", err);
    cr_assert_eq(got->checkpoint_id, 42);
    cr_assert_eq(got->timestamp_ms, 1700000000123);
    cr_assert_eq(got->n_files, 3);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(got->files[i].name, mf[i].name);
        cr_assert_eq(got->files[i].size, mf[i].size);
        cr_assert_eq(got->files[i].digest, mf[i].digest);
    }
    cr_assert_eq(got->job_len, 21);
    cr_assert_eq(memcmp(got->job, "parallelism=2;max=128", 21), 0);
    rill__snap_meta_free(got);
}

Test(snap_meta, round_trip_without_files_or_job)
{
    const char *p = tpath("_metadata");
    rill__snap_meta m = {0, -5, 0, NULL, NULL, 0};
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_meta_write(p, &m, err), RILL_OK, "%s", err);
    rill__snap_meta *got;
    cr_assert_eq(rill__snap_meta_read(p, &got, err), RILL_OK, "%s", err);
    cr_assert_eq(got->checkpoint_id, 0);
    cr_assert_eq(got->timestamp_ms, -5);
    cr_assert_eq(got->n_files, 0);
    cr_assert_eq(got->job_len, 0);
    rill__snap_meta_free(got);
    rill__snap_meta_free(NULL);
}

Test(snap_meta, bad_file_names_are_einval)
{
    const char *p = tpath("_metadata");
    const char *bad[] = {"", "/etc/passwd", "../x", "a/../b", "a//b", ".", "a/", "a/."};
    char err[RILL__ERRMSG_MAX];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rill__snap_meta_file f = {(char *)bad[i], 1, 2};
        rill__snap_meta m = {1, 2, 1, &f, NULL, 0};
        cr_assert_eq(rill__snap_meta_write(p, &m, err), RILL_EINVAL, "name '%s'", bad[i]);
        cr_assert_not(exists(p));
    }
}

Test(snap_meta, check_files_finds_missing_and_changed_files)
{
    rill__snap_meta_file f[2] = {{"a.snap", 0, 0}, {"b.snap", 0, 0}};
    rill__snap_fileinfo fa = write_sample(tpath("a.snap"));
    rill__snap_fileinfo fb = write_sample(tpath("b.snap"));
    f[0].size = fa.size;
    f[0].digest = fa.digest;
    f[1].size = fb.size;
    f[1].digest = fb.digest;
    rill__snap_meta m = {3, 4, 2, f, NULL, 0};
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_meta_check_files(&m, tmpdir, err), RILL_OK, "%s", err);
    /* b.snap replaced by another valid snapshot: its digest differs. */
    rill__snap_writer *w;
    cr_assert_eq(rill__snap_writer_open(&w, tpath("b.snap"), err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_meta_check_files(&m, tmpdir, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, tpath("b.snap")), "%s", err);
    cr_assert_not_null(strstr(err, "differs from the checkpoint metadata"), "%s", err);
    cr_assert_eq(unlink(tpath("a.snap")), 0);
    cr_assert_eq(rill__snap_meta_check_files(&m, tmpdir, err), RILL_ECORRUPT);
    cr_assert_not_null(strstr(err, tpath("a.snap")), "%s", err);
    cr_assert_not_null(strstr(err, "missing"), "%s", err);
}

/* ---- allocation failures ----------------------------------------------------- */

static long countdown; /* allocations left before one fails; < 0: none fails */
static int failed;

static int take(void)
{
    if (countdown == 0) {
        failed = 1;
        countdown = -1;
        return 0;
    }
    if (countdown > 0)
        countdown--;
    return 1;
}
static void *f_malloc(size_t n) { return take() ? malloc(n) : NULL; }
static void *f_calloc(size_t n, size_t k) { return take() ? calloc(n, k) : NULL; }
static void *f_realloc(void *p, size_t n) { return take() ? realloc(p, n) : NULL; }

/* Write, read and verify a file and a _metadata file: the first error. */
static int scenario(void)
{
    const char *p = tpath("alloc"), *mp = tpath("_metadata");
    char err[RILL__ERRMSG_MAX];
    rill__snap_writer *w;
    int rc = rill__snap_writer_open(&w, p, err);
    if (rc)
        return rc;
    for (int i = 0; i < 40 && !rc; i++) { /* enough sections to grow the table */
        rc = rill__snap_writer_section_begin(w, RILL__SNAP_KEYED, "op", "st", 0, 1);
        if (!rc)
            rc = rill__snap_writer_kv(w, "k", 1, "v", 1);
        if (!rc)
            rc = rill__snap_writer_section_end(w);
    }
    if (rc) {
        rill__snap_writer_abort(w);
        return rc;
    }
    if ((rc = rill__snap_writer_commit(w, NULL, err)) != RILL_OK)
        return rc;
    rill__snap_reader *r;
    if ((rc = rill__snap_reader_open(&r, p, err)) != RILL_OK)
        return rc;
    rill__snap_section s;
    const void *k, *v;
    size_t kl, vl;
    while ((rc = rill__snap_reader_next(r, &s)) == 1)
        while ((rc = rill__snap_reader_kv_next(r, &k, &kl, &v, &vl)) == 1)
            ;
    rill__snap_reader_close(r);
    if (rc)
        return rc;
    if ((rc = rill__snap_verify(p, NULL, err)) != RILL_OK)
        return rc;
    rill__snap_meta m = {1, 2, 3, mf, "job", 3}, *got;
    if ((rc = rill__snap_meta_write(mp, &m, err)) != RILL_OK)
        return rc;
    if ((rc = rill__snap_meta_read(mp, &got, err)) != RILL_OK)
        return rc;
    rill__snap_meta_free(got);
    return RILL_OK;
}

Test(snap_alloc, every_failed_allocation_is_enomem)
{
    cr_assert_eq(rill_replace_allocator(f_malloc, f_realloc, f_calloc, free), RILL_OK);
    long n;
    for (n = 0; n < 1000; n++) {
        countdown = n;
        failed = 0;
        int rc = scenario();
        if (!failed) {
            cr_assert_eq(rc, RILL_OK, "no failure injected, yet %d", rc);
            break;
        }
        cr_assert_eq(rc, RILL_ENOMEM, "allocation %ld failed: result %d", n, rc);
        cr_assert_not(exists(tpath("alloc.tmp")), "allocation %ld: temporary file left", n);
        cr_assert_not(exists(tpath("_metadata.tmp")), "allocation %ld: temporary file left", n);
        unlink(tpath("alloc"));
        unlink(tpath("_metadata"));
    }
    cr_assert_gt(n, 10, "the scenario allocates");
    cr_assert_lt(n, 1000);
    countdown = -1;
    cr_assert_eq(rill_replace_allocator(malloc, realloc, calloc, free), RILL_OK);
}
