// This file pins what the acceptor does to keep an idle connection small:
// the accepted connections' addresses share their IPs.

package engine

import (
	"net"
	"testing"
	"unsafe"
)

// TestAcceptedIPsShared accepts two connections from one source and checks
// that, once compacted, their local IPs share one array and so do their
// remote ones, each IPv4 in 4 bytes: gnet keeps both addresses for the
// connection's life, and package net gives each IP its own 32-byte socket
// address otherwise.
func TestAcceptedIPsShared(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var ips acceptedIPs
	var local, remote [2]net.IP
	for i := range 2 {
		d, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		nc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		ips.compact(nc)
		local[i] = nc.LocalAddr().(*net.TCPAddr).IP
		remote[i] = nc.RemoteAddr().(*net.TCPAddr).IP
		if got, want := nc.RemoteAddr().String(), d.LocalAddr().String(); got != want {
			t.Fatalf("remote address %s after compacting, want %s", got, want)
		}
	}
	for _, p := range []struct {
		name string
		ips  [2]net.IP
	}{{"local", local}, {"remote", remote}} {
		if len(p.ips[0]) != net.IPv4len || cap(p.ips[0]) != net.IPv4len {
			t.Errorf("%s IP %v has length %d, capacity %d; want 4, 4", p.name, p.ips[0], len(p.ips[0]), cap(p.ips[0]))
		}
		if unsafe.SliceData(p.ips[0]) != unsafe.SliceData(p.ips[1]) {
			t.Errorf("the two connections' %s IPs (%v) are separate arrays, want one shared", p.name, p.ips[0])
		}
	}
}
