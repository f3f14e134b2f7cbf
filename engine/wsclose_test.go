// This file tests the close codes a WebSocket peer may send (RFC 6455
// §7.4): one that is valid is echoed, any other fails the connection with
// 1002.

package engine_test

import (
	"encoding/binary"
	"fmt"
	"testing"
)

func TestWebSocketCloseCodes(t *testing.T) {
	t.Parallel()
	_, _, url := startWS(t, echoRouter())
	cases := map[int]int{
		1000: 1000, 1001: 1001, 1003: 1003, 1007: 1007, 1011: 1011, 1012: 1012, 1014: 1014,
		3000: 3000, 4999: 4999,
		// Never sent (§7.4.1), unassigned, or past the range.
		0: 1002, 999: 1002, 1004: 1002, 1005: 1002, 1006: 1002, 1015: 1002, 1016: 1002,
		2999: 1002, 5000: 1002, 65535: 1002,
	}
	for code, want := range cases {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			w := upgraded(t, url)
			w.frame(0x88, binary.BigEndian.AppendUint16(nil, uint16(code)), true)
			w.expectClose(want)
		})
	}
}
