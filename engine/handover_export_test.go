package engine

// Replaying reports whether the connection with net id id still reads
// through the replay layer of its adoption, asked on its loop.
func Replaying(s *Server, id uint64) bool {
	c := s.conns.load(id)
	if c == nil {
		return false
	}
	ch := make(chan bool, 1)
	if c.loop.enqueue(task{kind: taskFunc, fn: func() { ch <- c.tl != nil }}, nil) != nil {
		return false
	}
	return <-ch
}
