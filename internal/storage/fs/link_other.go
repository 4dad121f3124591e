//go:build !unix

package fs

import (
	"errors"
	"os"
)

// linkNamed is unsupported here: commits rename instead.
func (b *Backend) linkNamed(string, *os.File, string) error { return errors.ErrUnsupported }
