package fetch

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gantryhq/gantry/internal/statefile"
)

// SourceName is the file in a model's folder that says where its files
// came from.
const SourceName = ".gantry-source.json"

// Source is a model folder's record of its origin: one repository at one
// commit, every file with its size and digest. It is written before the
// first byte (Complete false: a resume takes the same commit) and again
// when every file is verified.
type Source struct {
	Repo     string       `json:"repo"`
	Revision string       `json:"revision"`
	Commit   string       `json:"commit"`
	Endpoint string       `json:"endpoint,omitempty"`
	Quant    string       `json:"quant,omitempty"`
	Complete bool         `json:"complete"`
	Started  time.Time    `json:"started"`
	Finished *time.Time   `json:"finished,omitempty"`
	Files    []SourceFile `json:"files"`
}

// SourceFile is one file of the record.
type SourceFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"` // LFS files
	BlobID string `json:"blob_id"`          // git blob id (of the LFS pointer for LFS files)
	// Verified says the file on disk was checked against its digest.
	Verified bool `json:"verified"`
}

// ReadSource reads dir's record; os.ErrNotExist when there is none.
func ReadSource(dir string) (*Source, error) {
	var s Source
	path := filepath.Join(dir, SourceName)
	if err := statefile.ReadJSON(path, &s); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	return &s, nil
}
