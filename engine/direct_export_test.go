// This file exports to the tests the count of frames SendRaw built
// straight into a connection's output (handed.direct, direct.go).

package engine

// DirectSends returns how many frames SendRaw built straight into the
// output of the server's connections, skipping the loop's queue. It reads
// each loop's count on that loop, outside any callback.
func DirectSends(s *Server) uint64 {
	var n uint64
	for _, l := range s.side.eachLoop() {
		got := make(chan uint64, 1)
		if l.enqueue(task{kind: taskFunc, fn: func() { got <- l.handed.direct }}, nil) == nil {
			n += <-got
		}
	}
	return n
}
