package fetch

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// FreeDisk is the free space (for an unprivileged user) of the file
// system that holds dir, or of its nearest existing parent; -1 when
// unknown.
func FreeDisk(dir string) int64 {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			var st unix.Statfs_t
			if unix.Statfs(d, &st) != nil {
				return -1
			}
			return int64(st.Bavail) * int64(st.Bsize)
		}
		if d == filepath.Dir(d) {
			return -1
		}
	}
}
