// This file holds typed per-connection state: keys whose values a
// connection keeps, without an any and a type assertion at every use.

package handler

import "fmt"

// Store is implemented by connections that keep values by key, as every
// connection the engine makes does. [Key] uses it; applications need not.
type Store interface {
	// Load returns the value stored under key, if any.
	Load(key any) (value any, ok bool)
	// Store stores value under key, or removes it for a nil value.
	Store(key, value any)
}

// Key is a typed slot of per-connection state, as context values are done
// right: each key is its own slot (two keys never clash, whatever their
// names), and Get returns a T, not an any. Connections keep their values
// until they close. Make keys once, as package-level or long-lived
// values:
//
//	var userKey = handler.NewKey[*User]("user")
//	userKey.Set(c, u)
//	u, ok := userKey.Get(c)
//
// It is safe for concurrent use by multiple goroutines, as the connection's
// store is.
type Key[T any] struct{ name string }

// NewKey returns a new key; name only labels it in messages.
func NewKey[T any](name string) *Key[T] { return &Key[T]{name: name} }

// Get returns the value c keeps under k, and whether it keeps one.
func (k *Key[T]) Get(c Conn) (v T, ok bool) {
	s, isStore := c.(Store)
	if !isStore {
		return v, false
	}
	x, ok := s.Load(k)
	if !ok {
		return v, false
	}
	v, ok = x.(T)
	return v, ok
}

// Set makes c keep v under k. It panics if c keeps no values (it does not
// implement [Store]): a programming error, as only a Conn of one's own can
// lack it.
func (k *Key[T]) Set(c Conn, v T) { k.store(c).Store(k, v) }

// Delete makes c forget its value under k.
func (k *Key[T]) Delete(c Conn) { k.store(c).Store(k, nil) }

func (k *Key[T]) store(c Conn) Store {
	s, ok := c.(Store)
	if !ok {
		panic(fmt.Sprintf("handler: key %q: %T keeps no values (no Store)", k.name, c))
	}
	return s
}

// String returns the key's name.
func (k *Key[T]) String() string { return k.name }
