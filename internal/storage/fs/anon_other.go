//go:build !linux

package fs

import (
	"errors"
	"os"
)

// Unnamed temp files and syncfs are Linux features; elsewhere writes use
// named temp files and per-file fsync.

func openAnon(*os.File) (*os.File, error) { return nil, errors.ErrUnsupported }

func linkAnon(_, _ *os.File, _ string) error { return errors.ErrUnsupported }

func syncFS(*os.File) error { return errors.ErrUnsupported }
