/*
 * pop3_key.c - keys for messages without a usable UIDL: SHA-256 (FIPS
 * 180-4) of the header lines or of the whole message with line ends made
 * canonical, as 68-character "hdr:" / "dup:" strings.  Pure functions,
 * plus pop3_top_key() which fetches the header with TOP n 0.
 */
#include <string.h>

#include "pop3/pop3.h"

struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char blk[64];
	size_t n;
};

static const uint32_t K256[64] = {0x428a2f98, 0x71374491, 0xb5c0fbcf,
    0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7,
    0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
    0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c,
    0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee,
    0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block(struct sha256 *s, const unsigned char *b)
{
	uint32_t w[64], a, bb, c, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)b[i * 4] << 24 | (uint32_t)b[i * 4 + 1] << 16 |
		    (uint32_t)b[i * 4 + 2] << 8 | (uint32_t)b[i * 4 + 3];
	for (i = 16; i < 64; i++)
		w[i] =
		    (ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10)) +
		    w[i - 7] +
		    (ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^
		        (w[i - 15] >> 3)) +
		    w[i - 16];
	a = s->h[0], bb = s->h[1], c = s->h[2], d = s->h[3];
	e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
		    ((e & f) ^ (~e & g)) + K256[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
		    ((a & bb) ^ (a & c) ^ (bb & c));
		h = g, g = f, f = e, e = d + t1;
		d = c, c = bb, bb = a, a = t1 + t2;
	}
	s->h[0] += a, s->h[1] += bb, s->h[2] += c, s->h[3] += d;
	s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void
sha256_init(struct sha256 *s)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
	    0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

	memset(s, 0, sizeof(*s));
	memcpy(s->h, iv, sizeof(iv));
}

static void
sha256_update(struct sha256 *s, const void *data, size_t n)
{
	const unsigned char *d = data;

	s->len += n;
	while (n > 0) {
		size_t take = 64 - s->n < n ? 64 - s->n : n;
		memcpy(s->blk + s->n, d, take);
		s->n += take, d += take, n -= take;
		if (s->n == 64) {
			sha256_block(s, s->blk);
			s->n = 0;
		}
	}
}

static void
sha256_final(struct sha256 *s, unsigned char out[32])
{
	uint64_t bits = s->len * 8;
	unsigned char pad = 0x80, z = 0, lb[8];
	int i;

	sha256_update(s, &pad, 1);
	while (s->n != 56)
		sha256_update(s, &z, 1);
	for (i = 0; i < 8; i++)
		lb[i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_update(s, lb, 8);
	for (i = 0; i < 8; i++) {
		out[i * 4] = (unsigned char)(s->h[i] >> 24);
		out[i * 4 + 1] = (unsigned char)(s->h[i] >> 16);
		out[i * 4 + 2] = (unsigned char)(s->h[i] >> 8);
		out[i * 4 + 3] = (unsigned char)s->h[i];
	}
}

void
pop3_header_key(const char *msg, size_t len, char key_out[POP3_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	struct sha256 s;
	unsigned char d[32];
	size_t i = 0, start;
	int i2;

	/* Hash each header line with a canonical "\n" end, up to the first
	 * empty line. */
	sha256_init(&s);
	while (i < len) {
		size_t e;

		start = i;
		while (i < len && msg[i] != '\n')
			i++;
		e = i;
		if (e > start && msg[e - 1] == '\r')
			e--;
		if (e == start && i < len)
			break; /* empty line: end of the header */
		sha256_update(&s, msg + start, e - start);
		sha256_update(&s, "\n", 1);
		if (i < len)
			i++;
	}
	sha256_final(&s, d);
	memcpy(key_out, "hdr:", 4);
	for (i2 = 0; i2 < 32; i2++) {
		key_out[4 + i2 * 2] = hex[d[i2] >> 4];
		key_out[5 + i2 * 2] = hex[d[i2] & 15];
	}
	key_out[68] = '\0';
}

void
pop3_content_key(const char *uidl, const char *msg, size_t len,
    char key_out[POP3_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	struct sha256 s;
	unsigned char d[32];
	size_t i = 0;
	int i2;

	sha256_init(&s);
	sha256_update(&s, uidl, strlen(uidl));
	sha256_update(&s, "\n", 1);
	/* every line with a canonical "\n" end: CR LF, CR CR LF and LF
	 * read alike */
	while (i < len) {
		size_t start = i, e;

		while (i < len && msg[i] != '\n')
			i++;
		e = i;
		while (e > start && msg[e - 1] == '\r')
			e--;
		sha256_update(&s, msg + start, e - start);
		if (i < len) {
			sha256_update(&s, "\n", 1);
			i++;
		}
	}
	sha256_final(&s, d);
	memcpy(key_out, "dup:", 4);
	for (i2 = 0; i2 < 32; i2++) {
		key_out[4 + i2 * 2] = hex[d[i2] >> 4];
		key_out[5 + i2 * 2] = hex[d[i2] & 15];
	}
	key_out[68] = '\0';
}

int
pop3_top_key(struct pop3 *p, uint32_t msgno, char key_out[POP3_UIDL_MAX + 1],
    struct err *err)
{
	struct buf b;
	int rc;

	buf_init(&b, (size_t)1 << 20);
	rc = pop3_top(p, msgno, 0, &b, err);
	if (rc == 0)
		pop3_header_key(b.data ? b.data : "", b.len, key_out);
	buf_free(&b);
	return rc;
}
