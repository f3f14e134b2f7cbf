//go:build !linux

// This file holds the peers' reader where there is no epoll: none, so
// that each peer reads on a goroutine of its own (castpeer.go).

package main

import (
	"errors"
	"sync/atomic"
)

type pollReader struct{}

func newPollReader([]*castPeer, int) (*pollReader, error) { return nil, errNoPoll }
func (*pollReader) run(*atomic.Bool)                      {}
func (*pollReader) close()                                {}

var errNoPoll = errors.New("no epoll")
