//go:build unix

package content

import (
	"io/fs"
	"syscall"
)

// linked reports whether the file still has a name: a deleted or
// replaced file keeps its bytes for open descriptors but has no links.
func linked(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || st.Nlink > 0
}
