package procstat

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := []byte("1234 (bench server) S 1 1234 1234 0 -1 4194560 250 0 0 0 37 5 0 0 20 0 3 0 100 1000 300\n")
	got, err := parseStat(line)
	if err != nil || got != 42 {
		t.Fatalf("parseStat = %d, %v; want 42", got, err)
	}
	if _, err := parseStat([]byte("garbage")); err == nil {
		t.Fatal("parseStat accepted garbage")
	}
}

func TestParseRSS(t *testing.T) {
	got, err := parseRSS([]byte("Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads: 3\n"))
	if err != nil || got != 1234<<10 {
		t.Fatalf("parseRSS = %d, %v", got, err)
	}
}

func TestSelf(t *testing.T) {
	pid := os.Getpid()
	if _, err := CPUTicks(pid); err != nil {
		t.Fatal(err)
	}
	if rss, err := RSS(pid); err != nil || rss <= 0 {
		t.Fatalf("RSS = %d, %v", rss, err)
	}
	if n, err := Slab(); err != nil || n <= 0 {
		t.Fatalf("Slab = %d, %v", n, err)
	}
	if n, err := FDs(pid); err != nil || n < 3 {
		t.Fatalf("FDs = %d, %v", n, err)
	}
}

func TestParseIO(t *testing.T) {
	r, w, err := parseIO([]byte("rchar: 1\nwchar: 2\nsyscr: 30\nsyscw: 40\nread_bytes: 0\n"))
	if err != nil || r != 30 || w != 40 {
		t.Fatalf("parseIO = %d, %d, %v", r, w, err)
	}
	if _, _, err := parseIO([]byte("rchar: 1\n")); err == nil {
		t.Fatal("parseIO accepted a file without syscr")
	}
	if _, _, err := Syscalls(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
