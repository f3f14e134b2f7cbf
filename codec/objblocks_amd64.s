//go:build amd64 && !purego

// This file is the AVX2 block classifier, classifyGeneric 64 bytes a
// block: the masks the block validator (objblocks.go) walks.

#include "textflag.h"

// STORE combines the byte masks of the low (lo) and the high (hi) 32 bytes
// of the block into one 64-bit mask at off(DI): one 64-bit store, which
// the Go code's 64-bit load of it is forwarded from (two 32-bit stores
// read as one word are not: the load waits for both to reach the cache).
#define STORE(lo, hi, off) \
	VPMOVMSKB lo, AX \
	VPMOVMSKB hi, BX \
	SHLQ      $32, BX \
	ORQ       BX, AX \
	MOVQ      AX, off(DI)

// EQUAL stores the mask of the bytes of the block (Y0, Y1) equal to the
// bytes of c.
#define EQUAL(c, off) \
	VPCMPEQB Y0, c, Y2 \
	VPCMPEQB Y1, c, Y3 \
	STORE(Y2, Y3, off)

// STRUCTURAL sets out to the structural bytes of in: ',' or ':', or '{'
// or '}' once bit 0x20 is set ('[' and ']' are those without it).
#define STRUCTURAL(in, out) \
	VPCMPEQB in, Y11, out \
	VPCMPEQB in, Y12, Y4 \
	VPOR     out, Y4, out \
	VPOR     in, Y13, Y4 \
	VPCMPEQB Y4, Y14, Y5 \
	VPOR     out, Y5, out \
	VPCMPEQB Y4, Y15, Y5 \
	VPOR     out, Y5, out

#define BROADCAST(c, y, x) \
	MOVL         c, AX \
	VMOVD        AX, x \
	VPBROADCASTB x, y

// func classifyAVX2(p *byte, n int, out *blockMasks)
//
// Classifies n blocks of 64 bytes at p into out[0:n], in blockMasks'
// order: quotes, backslashes, control bytes (min(x, 0x1f) == x), bytes
// >= 0x80 (their sign bits), white space (a byte equal to the entry of
// its low four bits in spaceTable; VPSHUFB gives 0 for a byte >= 0x80),
// structural bytes. The constants reach the vector registers with VMOVD,
// not MOVQ (a legacy SSE instruction among AVX ones is slow on some CPUs;
// see strrun_amd64.s).
TEXT ·classifyAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+16(FP), DI
	BROADCAST($0x22, Y7, X7)   // '"'
	BROADCAST($0x5c, Y8, X8)   // '\\'
	BROADCAST($0x1f, Y9, X9)   // the highest control byte
	BROADCAST($0x2c, Y11, X11) // ','
	BROADCAST($0x3a, Y12, X12) // ':'
	BROADCAST($0x20, Y13, X13) // the bit between '[' and '{'
	BROADCAST($0x7b, Y14, X14) // '{'
	BROADCAST($0x7d, Y15, X15) // '}'
	VMOVDQU ·spaceTable(SB), Y10

loop:
	TESTQ    CX, CX
	JZ       done
	VMOVDQU  0(SI), Y0
	VMOVDQU  32(SI), Y1
	EQUAL(Y7, 0)
	EQUAL(Y8, 8)
	VPMINUB  Y0, Y9, Y2
	VPCMPEQB Y0, Y2, Y2
	VPMINUB  Y1, Y9, Y3
	VPCMPEQB Y1, Y3, Y3
	STORE(Y2, Y3, 16)
	STORE(Y0, Y1, 24)
	VPSHUFB  Y0, Y10, Y2
	VPCMPEQB Y0, Y2, Y2
	VPSHUFB  Y1, Y10, Y3
	VPCMPEQB Y1, Y3, Y3
	STORE(Y2, Y3, 32)
	STRUCTURAL(Y0, Y2)
	STRUCTURAL(Y1, Y3)
	STORE(Y2, Y3, 40)
	ADDQ     $64, SI
	ADDQ     $48, DI
	DECQ     CX
	JMP      loop

done:
	VZEROUPPER
	RET

// spaceTable is, twice (VPSHUFB looks up within each 16-byte lane), the
// white space byte whose low four bits index it (' ' at 0, '\t' at 9, '\n'
// at 10, '\r' at 13), and 0xff, which no byte below 0x80 equals, elsewhere.
DATA ·spaceTable+0(SB)/8, $0xffffffffffffff20
DATA ·spaceTable+8(SB)/8, $0xffff0dffff0a09ff
DATA ·spaceTable+16(SB)/8, $0xffffffffffffff20
DATA ·spaceTable+24(SB)/8, $0xffff0dffff0a09ff
GLOBL ·spaceTable(SB), RODATA|NOPTR, $32
