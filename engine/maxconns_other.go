//go:build !unix

package engine

// defaultMaxConns is the cap where the process has no descriptor limit to
// read (Windows: sockets are handles, bounded by memory).
func defaultMaxConns() int { return 1 << 20 }
