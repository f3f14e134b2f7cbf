// Package readme holds the programs README.md shows and checks that it
// shows them as they are, so that the README's code compiles in CI.
package readme

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestReadmeShowsTheseFiles checks that every Go block of README.md is one
// of the files here, to the byte, named on its first line.
func TestReadmeShowsTheseFiles(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no Go block")
	}
	name := regexp.MustCompile(`^// (examples/readme/\S+\.go)\n`)
	seen := map[string]bool{}
	for i, b := range blocks {
		m := name.FindStringSubmatch(b[1])
		if m == nil {
			t.Errorf("README.md's Go block %d does not start with the file it shows (// examples/readme/...)", i+1)
			continue
		}
		file, err := os.ReadFile(filepath.Join("..", "..", m[1]))
		if err != nil {
			t.Errorf("block %d: %v", i+1, err)
			continue
		}
		if want := m[0] + string(file); b[1] != want {
			t.Errorf("README.md's block %d is not %s as it is: update the README from the file", i+1, m[1])
		}
		seen[m[1]] = true
	}
	for _, f := range []string{"examples/readme/server/main.go", "examples/readme/client/main.go"} {
		if !seen[f] {
			t.Errorf("README.md does not show %s", f)
		}
	}
}
