//go:build ignore

// gen_fuzz_stream writes the seed corpus of FuzzServerStream
// (engine/fuzz_stream_test.go) to engine/testdata/fuzz/FuzzServerStream:
//
//	go run engine/testdata/gen_fuzz_stream.go
//
// Each seed is a split header (the low three bits of the first byte are the
// number of cuts, each next byte places one cut at b/256 of the stream) and
// a stream of frames for a server whose message size is 128, within the
// bounds [64, 4096]. Files it did
// not write (crashers kept by the fuzzer) are left alone.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const size = 128

// pad pads s with spaces to n bytes (s may be longer: it is left as is).
func pad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}

// f is one frame at the default size.
func f(s string) string { return pad(s, size) }

// frames joins frames at the default size.
func frames(ss ...string) string {
	var b strings.Builder
	for _, s := range ss {
		b.WriteString(f(s))
	}
	return b.String()
}

// Split headers: no cut, one cut in the middle, three cuts, seven cuts.
const (
	whole = "\x00"
	half  = "\x01\x80"
	three = "\x03\x20\x90\xf0"
	seven = "\x07\x01\x10\x30\x55\x80\xaa\xfe"
)

func main() {
	dir := filepath.Join("engine", "testdata", "fuzz", "FuzzServerStream")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(err)
	}
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	big := func(s string) string { return pad(s, 4096) }
	seeds := map[string]string{
		// Valid frames, every opcode.
		"valid_echo":         whole + f(`0{"some_data": 123}`),
		"valid_echo_split":   seven + f(`0{"some_data": 123}`),
		"valid_original":     half + f(`7{"nested": {"a": [1, 2.5, null, true, "x"]}, "u": "h\u00e9llo \u2603"}`),
		"valid_batch":        three + strings.Repeat(f(`3{"i":1}`), 50),
		"opcode_every_kind":  seven + frames(`0{}`, `42{}`, `5{}`, `-1{"reason":"X","message":"y"}`, `-2{"message_size":128}`, `-3{"id":1,"op":1,"data":{"a":1}}`, `-3{"id":2,"op":2,"data":{}}`, `-3{"id":3,"op":99,"data":{}}`, `-4{"id":77,"data":{}}`, `-5{"id":78,"reason":"X","message":"y"}`, `-6{"t":1}`, `-7{"t":1}`, `-9{"token":"x"}`, `-10{}`, `-2147483648{}`, `2147483647{}`, `-8{}`),
		"opcode_lenient":     three + frames(`1 {"a": 1}`, `+3{"a":1}`, ` 4{"a":1}`, "\t5{}"),
		"opcode_bad":         three + frames(`abc{}`, `{}`, `0`, `1[1,2]`, `99999999999{}`, `2147483648{}`, `-2147483649{}`, `--1{}`, `0x1{}`, `1_0{}`),
		"opcode_reason_text": whole + f(`InvalidMessageSize{}`),
		"goaway_from_peer":   half + frames(`0{"before":1}`, `-8{"reason":"done"}`, `0{"after":1}`),
		"goaway_malformed":   whole + frames(`-8`, `-8[]`, `-8{"reason":`, `0{"still":"open"}`),
		"ping_and_unknown":   half + frames(`-6{"t":1732500000000000000}`, `-6{}`, `-9{}`, `-100{}`),
		"request_spaced":     half + frames(`-3{"id": 7, "op": 1, "data": {"a": 2, "b": 3}}`, `-3{"op":1,"data":{},"id":8}`),
		"reply_unknown_ids":  whole + frames(`-4{"id":1,"data":{}}`, `-5{"id":1,"reason":"A","message":"b"}`, `-4{"id":18446744073709551615,"data":{}}`),

		// Truncated frames: pieces that leave the stream out of step, and
		// end in the middle of a frame.
		"truncated_tail":       half + f(`0{"a":1}`) + `0{"a":`,
		"truncated_first":      whole + f(`0{"a":1}`)[:100] + f(`0{"b":2}`),
		"truncated_short":      whole + `0{"a":1}`,
		"truncated_json":       three + frames(`1{"a":`, `1{"a":"`, `1{"a":[1,2`, `1{"a":1}}`, `1{"a":1}{}`),
		"truncated_one_byte":   whole + "0",
		"truncated_almost_all": half + f(`0{"a":1}`)[:127],

		// -2 frames with sizes out of bounds or unreadable.
		"size_zero":          whole + f(`-2{"message_size": 0}`),
		"size_negative":      whole + f(`-2{"message_size": -1}`),
		"size_2_31":          whole + f(`-2{"message_size": 2147483648}`),
		"size_2_40":          whole + f(`-2{"message_size": 1099511627776}`),
		"size_2_63":          whole + f(`-2{"message_size": 9223372036854775808}`),
		"size_1e400":         whole + f(`-2{"message_size": 1e400}`),
		"size_string":        whole + f(`-2{"message_size": "256"}`),
		"size_fraction":      whole + f(`-2{"message_size": 256.5}`),
		"size_exponent":      whole + f(`-2{"message_size": 2.56e2}`),
		"size_null":          whole + f(`-2{"message_size": null}`),
		"size_missing":       whole + f(`-2{}`),
		"size_below_min":     whole + f(`-2{"message_size": 63}`),
		"size_above_max":     whole + f(`-2{"message_size": 4097}`),
		"size_64k":           whole + f(`-2{"message_size": 65536}`),
		"size_duplicate_key": whole + f(`-2{"message_size":64,"message_size":999999}`),
		"size_then_frames":   three + f(`-2{"message_size": 10}`) + frames(`0{"after":1}`, `0{"after":2}`),

		// -2 frames within bounds: the stream changes size.
		"size_shrink":       half + f(`-2{"message_size": 64}`) + pad(`0{"small":1}`, 64) + pad(`-6{"t":2}`, 64),
		"size_grow":         three + f(`-2{"message_size": 256}`) + pad(`0{"big":1}`, 256) + pad(`-3{"id":5,"op":1,"data":{}}`, 256),
		"size_max":          half + f(`-2{"message_size": 4096}`) + big(`0{"max":1}`),
		"size_grow_restore": whole + f(`-2{"message_size": 200}`) + pad(`-2{"message_size": 128}`, 200) + f(`0{"back":1}`),
		"size_twice":        whole + f(`-2{"message_size": 64}`) + pad(`-2{"message_size": 96}`, 64) + pad(`0{"x":1}`, 96),
		"size_then_bad":     half + f(`-2{"message_size": 256}`) + pad(`-2{"message_size": 1}`, 256),

		// Nesting: at 128 bytes a frame holds little, so the deep ones
		// first grow the frame to 4 KiB, the fuzzed server's largest.
		"nesting_512":   half + f(`-2{"message_size": 4096}`) + big(`1{"a":`+deep(511)+`}`),
		"nesting_513":   half + f(`-2{"message_size": 4096}`) + big(`1{"a":`+deep(512)+`}`),
		"nesting_huge":  three + f(`-2{"message_size": 4096}`) + big(`1{"a":`+strings.Repeat("[", 3000)),
		"brace_flood":   half + f(`-2{"message_size": 4096}`) + big(strings.Repeat("{", 4096)),
		"nesting_small": whole + f(`1{"a":`+deep(60)+`}`),

		// Runs of malformed frames: 16 in a row close the connection; a
		// well-formed frame between them starts the count again.
		"malformed_run":        three + strings.Repeat(f(`abc{}`), 16) + f(`0{"after":1}`),
		"malformed_run_broken": three + strings.Repeat(f(`1{"a":`), 15) + f(`-7{}`) + strings.Repeat(f(`{}`), 15),
		"malformed_run_calls":  three + strings.Repeat(f(`-3{"id":1}`), 15) + f(`-2{}`),
		"malformed_run_size":   whole + strings.Repeat(f(`-2{}`), 16),

		// Invalid UTF-8, NULs, odd padding.
		"utf8_invalid":   whole + frames("0{\"a\":\"\xff\"}", "0{\"a\":\"\xed\xa0\x80\"}", "0{\"\xc3\":1}", `0{"a":"\ud800"}`),
		"utf8_valid":     whole + f("0{\"\xe2\x98\x83\":\"\xf0\x9f\x98\x80\"}"),
		"nul_padding":    whole + `0{"a":1}` + strings.Repeat("\x00", size-len(`0{"a":1}`)),
		"nul_in_opcode":  whole + frames("0\x00{}", "\x000{}"),
		"tab_padding":    whole + `0{"a":1}` + strings.Repeat("\t", size-len(`0{"a":1}`)),
		"non_space_tail": whole + f(`0{"a":1}x`),
		"all_spaces":     whole + f(``),
		"all_nul":        whole + strings.Repeat("\x00", size),
		"binary":         three + "\xff\xfe\xfd\x00\x01\x02\x80\x81" + strings.Repeat("\x9c", 300),

		// Call envelopes, malformed.
		"request_no_id":        whole + f(`-3{"op":1,"data":{}}`),
		"request_id_string":    whole + f(`-3{"id":"1","op":1,"data":{}}`),
		"request_id_negative":  whole + f(`-3{"id":-1,"op":1,"data":{}}`),
		"request_id_2_64":      whole + f(`-3{"id":18446744073709551616,"op":1,"data":{}}`),
		"request_id_fraction":  whole + f(`-3{"id":1.5,"op":1,"data":{}}`),
		"request_op_overflow":  whole + f(`-3{"id":1,"op":2147483648,"data":{}}`),
		"request_op_negative":  whole + f(`-3{"id":1,"op":-3,"data":{}}`),
		"request_data_array":   whole + f(`-3{"id":1,"op":1,"data":[1]}`),
		"request_data_missing": whole + f(`-3{"id":1,"op":1}`),
		"request_data_null":    whole + f(`-3{"id":1,"op":1,"data":null}`),
		"request_dup_id":       whole + f(`-3{"id":1,"id":2,"op":1,"data":{}}`),
		"request_case":         whole + f(`-3{"ID":1,"OP":1,"DATA":{}}`),
		"request_bad_json":     whole + f(`-3{"id":1,"op":1,"data":{}`),
		"request_long":         whole + f(`-3{"id":1,"op":1,"data":{"x":"`+strings.Repeat("y", 80)+`"}}`),
		"reply_bad":            whole + frames(`-4{"id":"x","data":{}}`, `-4{"id":1}`, `-4{"data":{}}`, `-5{"id":1,"reason":5}`, `-5{"reason":"A"}`),
	}
	for name, s := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			panic(err)
		}
	}
	fmt.Printf("%d seeds in %s\n", len(seeds), dir)
}
