// This file serves the page: the embedded static files, the JavaScript
// client from clients/js, and config.json, which tells the page where the
// WebSocket endpoint is.

package main

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/simplerpc/simplerpc/clients/js"
)

//go:embed static
var static embed.FS

// wsPath is the path of the WebSocket endpoint on its listener.
const wsPath = "/chat"

// pageConfig is config.json: the page connects to
// ws://<the page's own host>:<WSPort><WSPath>, so that it works under
// whatever host name the browser used for the page.
type pageConfig struct {
	WSPort int    `json:"ws_port"`
	WSPath string `json:"ws_path"`
}

// pageHandler serves the page, /js/simplerpc.js (the client, not a copy:
// clients/js embeds it) and /config.json for a WebSocket endpoint on
// wsPort.
func pageHandler(wsPort int) (http.Handler, error) {
	files, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(pageConfig{WSPort: wsPort, WSPath: wsPath})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(files))
	mux.Handle("GET /js/", http.StripPrefix("/js/", http.FileServerFS(js.FS())))
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(cfg)
	})
	return mux, nil
}

// pageOrigins returns the WebSocket origins to allow for a page served on
// addr, as engine.WebSocketOrigins patterns (path.Match syntax, where the
// brackets of an IPv6 host must be escaped): its host and port, and
// localhost on that port; any host on that port when addr listens on every
// address (0.0.0.0, ::).
func pageOrigins(addr net.Addr) []string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return nil // not host:port: the engine's default, same host only
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return []string{"*:" + port}
	}
	literal := strings.NewReplacer("[", `\[`, "]", `\]`).Replace(net.JoinHostPort(host, port))
	return []string{literal, "localhost:" + port}
}

// portOf returns addr's port, or 0.
func portOf(addr net.Addr) int {
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}
