package engine

import (
	"math"
	"testing"
	"testing/fstest"
)

// TestDefaultBuffered: the server-wide caps come from GOMEMLIMIT, else the
// cgroup's limit (v2 or v1, the smallest on the path to the root), else
// the machine's memory, and are none when nothing is known.
func TestDefaultBuffered(t *testing.T) {
	meminfo := &fstest.MapFile{Data: []byte("MemTotal:       16777216 kB\nMemFree: 1 kB\n")} // 16 GiB
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		goLimit int64
		each    int
		from    string
	}{
		{"GOMEMLIMIT", fstest.MapFS{"proc/meminfo": meminfo}, 256 << 20, 32 << 20, boundGoLimit},
		{"GOMEMLIMIT over the cgroup", fstest.MapFS{
			"proc/self/cgroup":             {Data: []byte("0::/app\n")},
			"sys/fs/cgroup/app/memory.max": {Data: []byte("1073741824\n")},
		}, 512 << 20, 64 << 20, boundGoLimit},
		{"cgroup v2", fstest.MapFS{
			"proc/meminfo":                        meminfo,
			"proc/self/cgroup":                    {Data: []byte("0::/app/worker\n")},
			"sys/fs/cgroup/app/worker/memory.max": {Data: []byte("max\n")},
			"sys/fs/cgroup/app/memory.max":        {Data: []byte("1073741824\n")},
		}, math.MaxInt64, 128 << 20, boundCgroup},
		{"cgroup v1, the mount's root", fstest.MapFS{
			"proc/meminfo":     meminfo,
			"proc/self/cgroup": {Data: []byte("4:memory:/host/path\n3:cpu:/\n")},
			"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("2147483648\n")},
		}, math.MaxInt64, 256 << 20, boundCgroup},
		{"cgroup v1 unlimited", fstest.MapFS{
			"proc/meminfo":     meminfo,
			"proc/self/cgroup": {Data: []byte("4:cpu,memory:/x\n")},
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
		}, math.MaxInt64, 512 << 20, boundPhysical},
		{"physical memory", fstest.MapFS{"proc/meminfo": meminfo}, math.MaxInt64, 512 << 20, boundPhysical},
		{"nothing known", fstest.MapFS{}, math.MaxInt64, 0, boundNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, in, from := defaultBuffered(tc.fs, tc.goLimit)
			if out != tc.each || in != tc.each || from != tc.from {
				t.Fatalf("defaultBuffered = %d, %d, %q; want %d each from %q", out, in, from, tc.each, tc.from)
			}
		})
	}
}
