package handler_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simplerpc/simplerpc/codec"
	"github.com/simplerpc/simplerpc/handler"
)

var benchData = []byte(`{"x":3,"y":4,"piece":"knight"}`)

// nopFunc is the callback of the benchmarks: cheap, and touching only its
// own arguments so that it adds no contention of its own.
func nopFunc(_ handler.Conn, data []byte) error {
	if len(data) == 0 {
		return handler.MalformedPayload("empty")
	}
	return nil
}

// mapRouter is the straightforward alternative to handler.Router that the
// benchmarks compare it with: a map under a sync.RWMutex. Its Dispatch does
// what Router.Dispatch does for application opcodes (drop of unknown ones,
// panic recovery, failure conversion) and ignores negative ones, taking the
// read lock only for the lookup.
type mapRouter struct {
	mu  sync.RWMutex // guards m
	m   map[codec.Opcode][]handler.Func
	err atomic.Pointer[handler.Error] // last recovered panic, so the recover is not optimised away
}

func newMapRouter() *mapRouter { return &mapRouter{m: make(map[codec.Opcode][]handler.Func)} }

func (r *mapRouter) On(op codec.Opcode, fn handler.Func) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fns := r.m[op]
	r.m[op] = append(fns[:len(fns):len(fns)], fn)
}

func (r *mapRouter) Clear(op codec.Opcode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, op)
}

func (r *mapRouter) Dispatch(c handler.Conn, op codec.Opcode, data []byte) (fail *handler.Error) {
	if op < 0 {
		return nil
	}
	r.mu.RLock()
	fns := r.m[op]
	r.mu.RUnlock()
	if len(fns) == 0 {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			fail = &handler.Error{Reason: handler.ReasonInternal, Message: "internal error"}
			r.err.Store(fail)
		}
	}()
	for _, fn := range fns {
		if err := fn(c, data); err != nil {
			return handler.Failure(err)
		}
	}
	return nil
}

// dispatcher is what both implementations offer.
type dispatcher interface {
	On(codec.Opcode, handler.Func)
	Clear(codec.Opcode)
	Dispatch(handler.Conn, codec.Opcode, []byte) *handler.Error
}

var impls = []struct {
	name string
	new  func() dispatcher
}{
	{"router", func() dispatcher { return handler.NewRouter() }},
	{"rwmutex_map", func() dispatcher { return newMapRouter() }},
}

// TestDispatchAllocs holds Dispatch to one raw callback, on the dense and
// the map path, a catch-all and failure callbacks, to zero allocations.
func TestDispatchAllocs(t *testing.T) {
	r := handler.NewRouter()
	r.On(1, nopFunc)
	r.On(1<<20, nopFunc)
	c := &fakeConn{}
	for _, op := range []codec.Opcode{1, 1 << 20, 2, -1} {
		if n := testing.AllocsPerRun(100, func() { r.Dispatch(c, op, benchData) }); n != 0 {
			t.Errorf("Dispatch(%d) allocates %v times, want 0", op, n)
		}
	}
	r.Forward(func(handler.Conn, codec.Opcode, []byte) error { return nil })
	if n := testing.AllocsPerRun(100, func() { r.Dispatch(c, 2, benchData) }); n != 0 {
		t.Errorf("Dispatch to a catch-all allocates %v times, want 0", n)
	}
	failure := []byte(`{"reason":"ArgumentMissing","message":"Expected argument 'b' in opcode 1"}`)
	r.On(codec.OpFailure, nopFunc)
	r.On(codec.OpFailure, nopFunc)
	if n := testing.AllocsPerRun(100, func() { r.Dispatch(c, codec.OpFailure, failure) }); n != 0 {
		t.Errorf("Dispatch(-1) to failure callbacks allocates %v times, want 0", n)
	}
}

func BenchmarkDispatch(b *testing.B) {
	c := &fakeConn{}
	for _, impl := range impls {
		b.Run("impl="+impl.name+"/cb=raw", func(b *testing.B) {
			r := impl.new()
			r.On(1, nopFunc)
			b.ReportAllocs()
			b.SetBytes(int64(len(benchData)))
			for b.Loop() {
				if fail := r.Dispatch(c, 1, benchData); fail != nil {
					b.Fatal(fail)
				}
			}
		})
	}
	b.Run("impl=router/cb=raw_sparse", func(b *testing.B) {
		r := handler.NewRouter()
		r.On(1<<20, nopFunc)
		b.ReportAllocs()
		b.SetBytes(int64(len(benchData)))
		for b.Loop() {
			if fail := r.Dispatch(c, 1<<20, benchData); fail != nil {
				b.Fatal(fail)
			}
		}
	})
	b.Run("impl=router/cb=typed", func(b *testing.B) {
		r := handler.NewRouter()
		handler.Handle(r, 1, func(_ handler.Conn, m move) error {
			if m.X != 3 {
				return handler.ArgumentValueError("x")
			}
			return nil
		})
		b.ReportAllocs()
		b.SetBytes(int64(len(benchData)))
		for b.Loop() {
			if fail := r.Dispatch(c, 1, benchData); fail != nil {
				b.Fatal(fail)
			}
		}
	})
}

// BenchmarkContended measures dispatch while the table changes: two
// goroutines dispatch opcode 1 while a third registers and clears callbacks
// on other opcodes (on both the dense and the map path) at writeRate, one
// change every 10µs on average. Both implementations run the same callbacks
// at the same pace, which the writes/s metric shows.
//
// The writer sleeps between changes and catches up on the changes it owes
// when it wakes: on a machine with no more cores than dispatchers a
// sleeping goroutine only runs when the scheduler preempts a dispatcher
// (every 10ms), so the changes come in bursts there. The dispatchers take
// the b.N dispatches in batches, as RunParallel does, so ns/op is wall time
// per dispatch. B/op and allocs/op count the writer's allocations too.
func BenchmarkContended(b *testing.B) {
	const (
		dispatchers = 2
		batch       = 1000
		writeRate   = 100_000 // On or Clear calls per second
		writePause  = 10 * time.Microsecond
	)
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			r := impl.new()
			for op := codec.Opcode(0); op < 8; op++ {
				r.On(op, nopFunc)
			}
			r.On(1000, nopFunc)

			stop := make(chan struct{})
			writerDone := make(chan int)
			go func() {
				ops := [...]codec.Opcode{2, 3, 1000, 5000}
				start := time.Now()
				writes := 0
				for i := 0; ; i++ {
					select {
					case <-stop:
						writerDone <- writes
						return
					default:
					}
					for due := int(time.Since(start).Seconds() * writeRate); writes < due; writes += 2 {
						op := ops[i%len(ops)]
						r.On(op, nopFunc)
						r.Clear(op)
						i++
					}
					time.Sleep(writePause)
				}
			}()

			b.ReportAllocs()
			b.SetBytes(int64(len(benchData)))
			var (
				wg     sync.WaitGroup
				next   atomic.Int64 // dispatches handed out
				failed atomic.Pointer[handler.Error]
			)
			b.ResetTimer()
			start := time.Now()
			for range dispatchers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := &fakeConn{}
					for {
						n := min(int64(b.N)-next.Add(batch)+batch, batch)
						if n <= 0 {
							return
						}
						for range n {
							if fail := r.Dispatch(c, 1, benchData); fail != nil {
								failed.Store(fail)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			elapsed := time.Since(start)
			close(stop)
			writes := <-writerDone
			if fail := failed.Load(); fail != nil {
				b.Fatal(fail)
			}
			b.ReportMetric(float64(writes)/elapsed.Seconds(), "writes/s")
		})
	}
}

// BenchmarkDispatchMiddleware measures what a timing middleware (two clock
// reads, as a metrics middleware does) adds to a raw callback and to a
// call, against the same router without it.
func BenchmarkDispatchMiddleware(b *testing.B) {
	c := &fakeConn{}
	for _, mw := range []string{"none", "timing"} {
		r := handler.NewRouter()
		r.On(1, nopFunc)
		r.OnCall(2, func(handler.Conn, []byte) (any, error) { return callResult, nil })
		var last time.Duration
		if mw == "timing" {
			r.Use(timing(&last))
		}
		b.Run("mw="+mw+"/kind=frame", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(benchData)))
			for b.Loop() {
				if fail := r.Dispatch(c, 1, benchData); fail != nil {
					b.Fatal(fail)
				}
			}
		})
		b.Run("mw="+mw+"/kind=call", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(benchData)))
			for b.Loop() {
				if _, fail := r.DispatchCall(c, 2, benchData); fail != nil {
					b.Fatal(fail)
				}
			}
		})
	}
}
