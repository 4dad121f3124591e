//go:build unix

package fs

import (
	"os"

	"golang.org/x/sys/unix"
)

// linkNamed links the temp file tmp/<tmpBase> to base in dir. Linking
// through the directory's descriptor, rather than by path, makes a
// directory removed since it was opened fail (ENOENT) instead of linking
// into its successor, which a sync of dir would then miss.
func (b *Backend) linkNamed(tmpName string, dir *os.File, base string) error {
	tmpBase := tmpName[len(tmpDir)+1:]
	var err error
	cerr := withFD(b.tmp, func(tmpfd int) {
		cerr := withFD(dir, func(dirfd int) {
			err = unix.Linkat(tmpfd, tmpBase, dirfd, base, 0)
		})
		if err == nil {
			err = cerr
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: tmpName, New: base, Err: err}
	}
	return nil
}

// withFD runs fn with f's descriptor, which stays valid meanwhile even if
// f is closed concurrently.
func withFD(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}
