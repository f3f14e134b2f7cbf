// This file embeds the JavaScript client's module so that a Go server can
// serve it to browsers without a copy of its own.

// Package js holds the JavaScript client of simplerpc (simplerpc.js, an ES
// module for browsers and Node 20+, and its TypeScript declarations
// simplerpc.d.ts; see README.md beside it) and, for Go programs, [FS]: the
// two files embedded, ready to serve with net/http:
//
//	mux.Handle("/js/", http.StripPrefix("/js/", http.FileServerFS(js.FS())))
//
// A page then loads the client with
// import { connect } from '/js/simplerpc.js'.
package js

import (
	"embed"
	"io/fs"
)

//go:embed simplerpc.js simplerpc.d.ts
var files embed.FS

// FS returns the client's files, simplerpc.js and simplerpc.d.ts, at the
// root of a read-only file system. It is safe for concurrent use by
// multiple goroutines, as is the file system it returns.
func FS() fs.FS { return files }
