package fit

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/gantryhq/gantry/internal/hub"
	"github.com/gantryhq/gantry/internal/inventory"
)

// Remote is a repository's files as the inventory reads them: listed from
// the Hub's tree, read through HTTP ranges (each ReadAt one request for
// exactly the bytes asked for).
type Remote struct {
	Ctx    context.Context
	Client *hub.Client
	Repo   *hub.Repo
	// Files are the files of the model (the selection get would take).
	Files []hub.File
}

var _ inventory.Files = (*Remote)(nil)

// Where is "org/name@commit".
func (r *Remote) Where() string { return r.Repo.Repo + "@" + r.Repo.Commit }

// List lists the files with their sizes.
func (r *Remote) List() ([]inventory.FileInfo, error) {
	out := make([]inventory.FileInfo, 0, len(r.Files))
	for _, f := range r.Files {
		out = append(out, inventory.FileInfo{Name: f.Path, Size: f.Size})
	}
	return out, nil
}

// Open returns a reader of one file through ranges.
func (r *Remote) Open(name string) (inventory.FileReader, error) {
	return &rangeReader{r: r, name: name}, nil
}

type rangeReader struct {
	r    *Remote
	name string
}

func (x *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	body, err := x.r.Client.Open(x.r.Ctx, x.r.Repo, x.name, off, int64(len(p)))
	if err != nil {
		if he := (*hub.Error)(nil); errors.As(err, &he) && he.Status == http.StatusRequestedRangeNotSatisfiable {
			return 0, io.EOF
		}
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

func (x *rangeReader) Close() error { return nil }
