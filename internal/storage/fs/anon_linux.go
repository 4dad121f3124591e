package fs

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openAnon creates an unnamed regular file in dir (O_TMPFILE): nothing
// appears in the directory, nothing is left behind by a crash, and linking
// it to its final name is the only directory change a commit needs.
func openAnon(dir *os.File) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, filePerm)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "O_TMPFILE", Err: err}
	}
	return os.NewFile(uintptr(fd), tmpDir+"/(unnamed)"), nil
}

// linkAnon gives the unnamed file f the name base in dir. Through
// /proc/self/fd it needs no privilege; AT_EMPTY_PATH is the fallback where
// /proc is missing (it needs CAP_DAC_READ_SEARCH).
// dir may be closed concurrently: SyscallConn keeps its descriptor valid
// while the link is made.
func linkAnon(f, dir *os.File, base string) error {
	rc, err := dir.SyscallConn()
	if err != nil {
		return &os.LinkError{Op: "link", Old: "(unnamed)", New: base, Err: err}
	}
	fd := int(f.Fd())
	cerr := rc.Control(func(dirfd uintptr) {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), int(dirfd), base, unix.AT_SYMLINK_FOLLOW)
		if err == unix.ENOENT {
			if _, serr := os.Stat("/proc/self/fd"); serr != nil {
				err = unix.Linkat(fd, "", int(dirfd), base, unix.AT_EMPTY_PATH)
			}
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: "(unnamed)", New: base, Err: err}
	}
	return nil
}

// syncFS makes everything written to the filesystem holding f durable, in
// one call (syncfs(2)).
func syncFS(f *os.File) error {
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return &os.PathError{Op: "syncfs", Path: f.Name(), Err: err}
	}
	return nil
}
