//go:build amd64 && !purego

// This file is the AVX2 block classifier, classifyGeneric 64 bytes a
// block: the masks the block validator (objblocks.go) walks.

#include "textflag.h"

// HALF classifies the 32 bytes at off(SI) into the low (moff 0) or the
// high (moff 4) halves of the masks at DI: quotes, backslashes, control
// bytes (min(x, 0x1f) == x), bytes >= 0x80 (their sign bits), white
// space, structural bytes ('[' and ']' are '{' and '}' without bit 0x20).
#define HALF(off, moff) \
	VMOVDQU   off(SI), Y0 \
	VPCMPEQB  Y0, Y5, Y1 \
	VPMOVMSKB Y1, AX \
	MOVL      AX, (0+moff)(DI) \
	VPCMPEQB  Y0, Y6, Y1 \
	VPMOVMSKB Y1, AX \
	MOVL      AX, (8+moff)(DI) \
	VPMINUB   Y0, Y7, Y1 \
	VPCMPEQB  Y0, Y1, Y1 \
	VPMOVMSKB Y1, AX \
	MOVL      AX, (16+moff)(DI) \
	VPMOVMSKB Y0, AX \
	MOVL      AX, (24+moff)(DI) \
	VPCMPEQB  Y0, Y8, Y1 \
	VPCMPEQB  Y0, Y9, Y2 \
	VPOR      Y1, Y2, Y1 \
	VPCMPEQB  Y0, Y10, Y2 \
	VPOR      Y1, Y2, Y1 \
	VPCMPEQB  Y0, Y11, Y2 \
	VPOR      Y1, Y2, Y1 \
	VPMOVMSKB Y1, AX \
	MOVL      AX, (32+moff)(DI) \
	VPCMPEQB  Y0, Y12, Y1 \
	VPCMPEQB  Y0, Y13, Y2 \
	VPOR      Y1, Y2, Y1 \
	VPOR      Y0, Y8, Y3 \
	VPCMPEQB  Y3, Y14, Y2 \
	VPOR      Y1, Y2, Y1 \
	VPCMPEQB  Y3, Y15, Y2 \
	VPOR      Y1, Y2, Y1 \
	VPMOVMSKB Y1, AX \
	MOVL      AX, (40+moff)(DI)

#define BROADCAST(c, y, x) \
	MOVL         c, AX \
	VMOVD        AX, x \
	VPBROADCASTB x, y

// func classifyAVX2(p *byte, n int, out *blockMasks)
//
// Classifies n blocks of 64 bytes at p into out[0:n]. The constants reach
// the vector registers with VMOVD, not MOVQ (a legacy SSE instruction
// among AVX ones is slow on some CPUs; see strrun_amd64.s).
TEXT ·classifyAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ out+16(FP), DI
	BROADCAST($0x22, Y5, X5)  // '"'
	BROADCAST($0x5c, Y6, X6)  // '\\'
	BROADCAST($0x1f, Y7, X7)  // the highest control byte
	BROADCAST($0x20, Y8, X8)  // ' ', and the bit between '[' and '{'
	BROADCAST($0x09, Y9, X9)  // '\t'
	BROADCAST($0x0a, Y10, X10) // '\n'
	BROADCAST($0x0d, Y11, X11) // '\r'
	BROADCAST($0x2c, Y12, X12) // ','
	BROADCAST($0x3a, Y13, X13) // ':'
	BROADCAST($0x7b, Y14, X14) // '{' (and '[' | 0x20)
	BROADCAST($0x7d, Y15, X15) // '}' (and ']' | 0x20)

loop:
	TESTQ CX, CX
	JZ    done
	HALF(0, 0)
	HALF(32, 4)
	ADDQ  $64, SI
	ADDQ  $48, DI
	DECQ  CX
	JMP   loop

done:
	VZEROUPPER
	RET
