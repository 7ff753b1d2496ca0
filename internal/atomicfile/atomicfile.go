// Package atomicfile writes small files (metadata, job records) so that a
// crash leaves either the old content or the new, never a torn file.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to path.tmp, fsyncs it, renames it over path and
// fsyncs the directory, so that the rename itself is durable.
func Write(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
