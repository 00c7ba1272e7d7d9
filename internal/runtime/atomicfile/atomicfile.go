// Package atomicfile replaces a file's content so that a crash leaves the
// old content or the new, synced, never a mix.
package atomicfile

import (
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Write replaces path's content with data (renameio.WriteFile: a synced
// temporary file renamed over it), the temporary file beside path. Left
// to choose, renameio creates, renames and removes a probe file in
// os.TempDir on every write to learn whether it may put its temporary file
// there; a satellite saving its bundle on each change paid more system
// calls for that probe than for the write. Beside path a rename never
// crosses file systems, so no probe is needed.
func Write(path string, data []byte, perm os.FileMode) error {
	return renameio.WriteFile(path, data, perm, renameio.WithTempDir(filepath.Dir(path)))
}
