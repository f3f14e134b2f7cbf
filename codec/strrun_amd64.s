//go:build amd64 && !purego

// This file is the AVX2 string kernel, stringRunGeneric 32 bytes a step.

#include "textflag.h"

// func stringRunAVX2(b []byte) (n int, high bool)
//
// Each block of 32 bytes: the quotes, the backslashes and the control bytes
// (min(x, 0x1f) == x) marked with VPCMPEQB, their mask taken with
// VPMOVMSKB; the bytes of the blocks without a mark OR-ed into Y7 for the
// high bits. In the block with a mark, only the bytes below the first mark
// count for high. The constants reach the vector registers with VMOVD, not
// MOVQ: a legacy SSE instruction among AVX ones cost 225 ns a call on an
// AMD EPYC VM (docs/BENCHMARKS.md, "Long strings").
TEXT ·stringRunAVX2(SB), NOSPLIT, $0-33
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	ANDQ $-32, CX             // the end of the whole blocks
	XORQ AX, AX               // n
	XORL R8, R8               // high bits of the block with the mark
	VPXOR Y7, Y7, Y7          // the bytes of the blocks without a mark, OR-ed
	MOVL $0x22, DX
	VMOVD DX, X1
	VPBROADCASTB X1, Y1       // '"'
	MOVL $0x5c, DX
	VMOVD DX, X2
	VPBROADCASTB X2, Y2       // '\\'
	MOVL $0x1f, DX
	VMOVD DX, X3
	VPBROADCASTB X3, Y3       // the highest control byte

loop:
	CMPQ AX, CX
	JAE  done
	VMOVDQU  (SI)(AX*1), Y4
	VPCMPEQB Y4, Y1, Y5
	VPCMPEQB Y4, Y2, Y6
	VPOR     Y5, Y6, Y5
	VPMINUB  Y4, Y3, Y6
	VPCMPEQB Y4, Y6, Y6
	VPOR     Y5, Y6, Y5
	VPMOVMSKB Y5, BX
	TESTL    BX, BX
	JNZ      found
	VPOR     Y4, Y7, Y7
	ADDQ     $32, AX
	JMP      loop

found:
	BSFL      BX, BX          // the first mark, 0..31
	VPMOVMSKB Y4, R8          // the high bits of the block
	MOVL      $1, DX
	MOVL      BX, CX
	SHLQ      CX, DX
	DECQ      DX              // the bytes below the mark
	ANDL      DX, R8
	ADDQ      BX, AX

done:
	VPMOVMSKB Y7, DX
	ORL       DX, R8
	SETNE     high+32(FP)
	MOVQ      AX, n+24(FP)
	VZEROUPPER
	RET
