package codec

// The two readers behind DecodeFrame, for the tests that hold them to the
// same answers.
var (
	FastCall           = fastCall
	DecodeFrameGeneral = decodeFrameGeneral
	// CPUPerOp is cpuPerOp, for the benchmarks of package codec_test.
	CPUPerOp = cpuPerOp
)
