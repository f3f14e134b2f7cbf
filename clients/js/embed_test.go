// This file shows FS, the embedded JavaScript client.

package js_test

import (
	"fmt"
	"io/fs"

	"github.com/simplerpc/simplerpc/clients/js"
)

// ExampleFS lists the files a Go server can serve to browsers.
func ExampleFS() {
	names, _ := fs.Glob(js.FS(), "*")
	fmt.Println(names)
	// Output: [simplerpc.d.ts simplerpc.js]
}
